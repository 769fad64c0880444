/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fault injection for plan creation, as SQLite's test_malloc.c does for its allocator: a
 * test arms the hook with n, and the nth allocation or oneDNN call that plan building makes
 * fails as if memory ran out. A test walks n = 1, 2, ... until a build meets no fault, so
 * every error path of kern_plan_create() runs once (tests/unit/test_kernels_fault.c).
 *
 * Always compiled in: plan building is off the hot path, and disarmed the check is one
 * relaxed load per allocation or oneDNN call while a plan is built. kern_plan_run() and the
 * row loaders never consult it.
 */
#include "kernels/kern_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

static atomic_ulong kern_fault_at;	/* the call to fail, 1-based; 0: disarmed */
static atomic_ulong kern_fault_calls;	/* calls counted since arming */

void
kern_fault_arm(unsigned long nth)
{
	atomic_store_explicit(&kern_fault_at, 0, memory_order_relaxed);
	atomic_store_explicit(&kern_fault_calls, 0, memory_order_relaxed);
	atomic_store_explicit(&kern_fault_at, nth, memory_order_relaxed);
}

unsigned long
kern_fault_count(void)
{
	return atomic_load_explicit(&kern_fault_calls, memory_order_relaxed);
}

bool
kern_fault(void)
{
	unsigned long at = atomic_load_explicit(&kern_fault_at, memory_order_relaxed);

	if (at == 0)
		return false;
	return atomic_fetch_add_explicit(&kern_fault_calls, 1, memory_order_relaxed) + 1 == at;
}

void *
kern_malloc(size_t n)
{
	return kern_fault() ? NULL : malloc(n);
}

void *
kern_calloc(size_t n, size_t size)
{
	return kern_fault() ? NULL : calloc(n, size);
}

void *
kern_realloc(void *p, size_t n)
{
	return kern_fault() ? NULL : realloc(p, n);
}

int
kern_tensor_alloc(struct tg_tensor *t)
{
	return kern_fault() ? -ENOMEM : tg_tensor_alloc(t);
}
