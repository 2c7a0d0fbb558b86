/* Status names, diagnostics and buffers: the plumbing every module uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "diag.h"
#include "tlspolicy.h"

static void
test_common__every_status_has_its_own_name(void **state)
{
	(void)state;
	for (int s = TP_OK; s > TP_STATUS_LAST; s--) {
		const char *name = tp_strerror(s);

		assert_non_null(name);
		assert_string_not_equal(name, "unknown status");
		for (int t = TP_OK; t > s; t--)
			if (strcmp(name, tp_strerror(t)) == 0)
				fail_msg("status %d and %d share the name \"%s\"", s, t, name);
	}
	assert_string_equal(tp_strerror(TP_STATUS_LAST), "unknown status");
	assert_string_equal(tp_strerror(42), "unknown status");
}

static void
test_common__diag_formats_file_line_and_errno_like_postfix(void **state)
{
	tp_diag d = TP_DIAG_INIT;
	char buf[256];

	(void)state;
	assert_int_equal(tp__diag_set(&d, TP_ESYNTAX, "tls_policy", 12,
				      "bad \"%s\"", "x"), TP_ESYNTAX);
	assert_string_equal(tp_diag_format(&d, buf, sizeof(buf)),
			    "tls_policy:12: bad \"x\"");
	tp__diag_set(&d, TP_EIO, "main.cf", 0, "unreadable");
	assert_string_equal(tp_diag_format(&d, buf, sizeof(buf)), "main.cf: unreadable");
	tp__diag_errno(&d, TP_EIO, 28, "error writing %s", "/x/tls_policy.db");
	assert_string_equal(tp_diag_format(&d, buf, sizeof(buf)),
			    "error writing /x/tls_policy.db: No space left on device");
	assert_int_equal(d.status, TP_EIO);
	/* A NULL diag is allowed and the status still comes back. */
	assert_int_equal(tp__diag_set(NULL, TP_EDB, NULL, 0, "x"), TP_EDB);
	tp_diag_clear(&d);
	assert_string_equal(tp_diag_format(&d, buf, sizeof(buf)), "success");
}

static void
test_common__buffer_grows_and_stays_terminated(void **state)
{
	tp_buf b = TP_BUF_INIT;

	(void)state;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(tp__buf_printf(&b, "%03d,", i), 0);
	assert_int_equal(b.size, 4000);
	assert_int_equal(strlen(b.ptr), 4000);
	assert_memory_equal(b.ptr + 3996, "999,", 4);
	tp__buf_truncate(&b, 3);
	assert_string_equal(b.ptr, "000");
	tp_buf_dispose(&b);
	assert_null(b.ptr);
	tp_buf_dispose(&b);
}

static void
test_common__strarray_owns_copies(void **state)
{
	tp_strarray a = TP_STRARRAY_INIT;
	char s[] = "mx1.example.com";

	(void)state;
	assert_int_equal(tp__strarray_push(&a, s), 0);
	s[0] = 'X';
	assert_int_equal(tp__strarray_push(&a, "b"), 0);
	assert_int_equal(a.count, 2);
	assert_string_equal(a.strings[0], "mx1.example.com");
	tp_strarray_dispose(&a);
	assert_int_equal(a.count, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_common__every_status_has_its_own_name),
		cmocka_unit_test(test_common__diag_formats_file_line_and_errno_like_postfix),
		cmocka_unit_test(test_common__buffer_grows_and_stays_terminated),
		cmocka_unit_test(test_common__strarray_owns_copies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
