/* SPDX-License-Identifier: MIT */
/* Builds the one statement an operation runs, from the collection's
 * description: SQL text with $n placeholders, typed parameters, and the
 * result columns. Internal to the store. */
#ifndef PL_STORE_SQL_H
#define PL_STORE_SQL_H

#include "store_private.h"

/* Fills op->sql, params and rcols for op->kind from rec (put/insert) or
 * filter (get/delete/count/range) and the op's range fields, in op's arena
 * a. anchor_seq is the seq found by the anchor step (range only, -1 none).
 * Returns 0, or -1 with err (STORE_ERR_INPUT: unknown field, wrong type,
 * missing key, value too large or not UTF-8). */
int store_sql_build(struct arena *a, struct store_op *op, const struct store_rec *rec,
                    int64_t anchor_seq, size_t max_value, struct err *err) PL_WARN_UNUSED;

#endif
