/*
 * NAME
 *	tlspolicy.h - libtlspolicy, keep Postfix's TLS policy table correct
 * SUMMARY
 *	The public API. Include this header only; link with -ltlspolicy.
 */
#ifndef TLSPOLICY_H
#define TLSPOLICY_H

#include "tlspolicy/common.h"
#include "tlspolicy/document.h"
#include "tlspolicy/value.h"
#include "tlspolicy/fingerprint.h"
#include "tlspolicy/probe.h"
#include "tlspolicy/map.h"
#include "tlspolicy/config.h"
#include "tlspolicy/maps.h"
#include "tlspolicy/resolver.h"
#include "tlspolicy/nexthop.h"
#include "tlspolicy/client.h"
#include "tlspolicy/delivery.h"
#include "tlspolicy/trust.h"
#include "tlspolicy/queue.h"

#define TLSPOLICY_VERSION "0.1.0"

#endif
