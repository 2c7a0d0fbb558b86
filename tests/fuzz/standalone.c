/*
 * Standalone driver for the fuzz targets: runs LLVMFuzzerTestOneInput
 * over every file named on the command line, or every regular file in a
 * directory named there, so ctest replays the committed corpus without
 * libFuzzer. Fails when a corpus is missing or empty: a fuzz test that
 * replays nothing proves nothing.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
run_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	unsigned char *data = NULL;
	size_t size = 0, asize = 0, n;

	if (fp == NULL) {
		perror(path);
		return -1;
	}
	for (;;) {
		if (size == asize) {
			asize = asize ? asize * 2 : 4096;
			data = realloc(data, asize);
			if (data == NULL) {
				fclose(fp);
				return -1;
			}
		}
		n = fread(data + size, 1, asize - size, fp);
		if (n == 0)
			break;
		size += n;
	}
	fclose(fp);
	LLVMFuzzerTestOneInput(data, size);
	free(data);
	return 0;
}

int
main(int argc, char **argv)
{
	long count = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) != 0) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (run_file(argv[i]) != 0)
				return 1;
			count++;
			continue;
		}
		DIR *dir = opendir(argv[i]);
		struct dirent *de;

		if (dir == NULL) {
			perror(argv[i]);
			return 1;
		}
		while ((de = readdir(dir)) != NULL) {
			char path[4096];

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			if (run_file(path) != 0) {
				closedir(dir);
				return 1;
			}
			count++;
		}
		closedir(dir);
	}
	printf("replayed %ld inputs\n", count);
	return count > 0 ? 0 : 1;
}
