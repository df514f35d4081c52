/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every homeostat probe family shares: the probe numbering and the config table that
 * switches probes on and sets their sampling, the per-cgroup log2 histogram, and helpers.
 *
 * Each family is its own BPF object (one can fail to load on an odd kernel without taking
 * the others down), so each object has its own copy of hs_config; the loader writes the
 * same table into all of them. The layouts here are mirrored in sensor/src/maps.rs.
 */
#ifndef HS_COMMON_H
#define HS_COMMON_H

#include "hs_kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* Index of a probe in hs_config. */
enum hs_probe {
	HS_PROBE_RUNQ = 0,
	HS_PROBE_CPU = 1,
	HS_PROBE_EXIT = 2,
	HS_PROBE_OOM = 3,
	HS_PROBE_TCP_RETRANS = 4,
	HS_PROBE_TCP_RESET = 5,
	HS_PROBE_TCP_CONNECT = 6,
	HS_PROBE_BLOCK = 7,
	HS_PROBE_COUNT = 8,
};

/* Per probe: whether it records at all, and for latency probes which 1-in-N events start a
 * measurement (counters always count every event: a sampled counter would lie). */
struct hs_probe_cfg {
	__u32 enabled;
	__u32 sample_every;
};

/* Indexed by enum hs_probe; the loader writes the whole table. A global (its own data
 * section, so the loader finds it by name: the map `.data.hs_config`) rather than an array
 * map, so that a program reads a switch with one load instead of a map lookup: the scheduler
 * probe reads two on every context switch. */
struct hs_probe_cfg hs_config[HS_PROBE_COUNT] SEC(".data.hs_config");

/* Ring-buffer records that did not fit (reader too slow); per CPU, summed by the reader. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hs_rb_drops SEC(".maps");

/* Slot i counts latencies in [2^i, 2^(i+1)) ns (slot 0 also holds 0 and 1); the last slot
 * takes everything from 2^35 ns (34 s) up. */
#define HS_SLOTS 36

struct hs_hist {
	__u64 count;
	__u64 sum_ns;
	__u64 slots[HS_SLOTS];
};

/* Room for this many cgroups per per-cgroup map; a node rarely has more than a few hundred. */
#define HS_MAX_CGROUPS 10240

static __always_inline struct hs_probe_cfg *hs_config_of(enum hs_probe probe)
{
	return &hs_config[probe];
}

static __always_inline int hs_enabled(enum hs_probe probe)
{
	return hs_config[probe].enabled;
}

/* Whether this event starts a latency measurement: probe enabled, and the 1-in-N draw hit. */
static __always_inline int hs_sampled(enum hs_probe probe)
{
	struct hs_probe_cfg *cfg = hs_config_of(probe);

	if (!cfg->enabled)
		return 0;
	return cfg->sample_every <= 1 || bpf_get_prandom_u32() % cfg->sample_every == 0;
}

/* floor(log2(v)) (0 for 0): round v up to 2^(k+1) - 1, whose product with a de Bruijn
 * constant has a distinct top six bits for each k; the table maps those back to k. Branch
 * free, about a third of the instructions of a binary search (the scheduler probe buckets a
 * wait on every context switch). The table is read-only data (.rodata), read without a call. */
static const __u8 hs_log2_table[64] = {
	0,  47, 1,  56, 48, 27, 2,  60, 57, 49, 41, 37, 28, 16, 3,  61,
	54, 58, 35, 52, 50, 42, 21, 44, 38, 32, 29, 23, 17, 11, 4,  62,
	46, 55, 26, 59, 40, 36, 15, 53, 34, 51, 20, 43, 31, 22, 10, 45,
	25, 39, 14, 33, 19, 30, 9,  24, 13, 18, 8,  12, 7,  6,  5,  63,
};

static __always_inline __u32 hs_log2(__u64 v)
{
	v |= v >> 1;
	v |= v >> 2;
	v |= v >> 4;
	v |= v >> 8;
	v |= v >> 16;
	v |= v >> 32;
	return hs_log2_table[(v * 0x03f79d71b4cb0a89ULL) >> 58];
}

/* The histogram of a cgroup in a per-CPU hash map of struct hs_hist, created empty if absent. */
static __always_inline struct hs_hist *hs_hist_get(void *map, __u64 cgroup_id)
{
	struct hs_hist *h = bpf_map_lookup_elem(map, &cgroup_id);

	if (h)
		return h;
	struct hs_hist zero = {};

	bpf_map_update_elem(map, &cgroup_id, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, &cgroup_id);
}

/* The histogram slot of a latency. */
static __always_inline __u32 hs_slot(__u64 delta_ns)
{
	__u32 slot = hs_log2(delta_ns);

	return slot < HS_SLOTS ? slot : HS_SLOTS - 1;
}

/* Records one latency in a histogram. */
static __always_inline void hs_hist_record(struct hs_hist *h, __u64 delta_ns)
{
	__u32 slot = hs_slot(delta_ns);

	h->count++;
	h->sum_ns += delta_ns;
	h->slots[slot]++;
}

/* Adds one latency to the histogram of a cgroup in a per-CPU hash map of struct hs_hist. */
static __always_inline void hs_hist_add(void *map, __u64 cgroup_id, __u64 delta_ns)
{
	struct hs_hist *h = hs_hist_get(map, cgroup_id);

	if (h)
		hs_hist_record(h, delta_ns);
}

/* Adds to a u64 counter of a cgroup in a per-CPU hash map. */
static __always_inline void hs_counter_add(void *map, __u64 cgroup_id, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(map, &cgroup_id);

	if (!c) {
		__u64 zero = 0;

		bpf_map_update_elem(map, &cgroup_id, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(map, &cgroup_id);
		if (!c)
			return;
	}
	*c += n;
}

/* Looks a value up, inserting zeroes first if absent; for per-cgroup structs of counters. */
static __always_inline void *hs_lookup_or_zero(void *map, __u64 *key, void *zero)
{
	void *v = bpf_map_lookup_elem(map, key);

	if (v)
		return v;
	bpf_map_update_elem(map, key, zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

static __always_inline void hs_count_drop(void)
{
	__u32 zero = 0;
	__u64 *d = bpf_map_lookup_elem(&hs_rb_drops, &zero);

	if (d)
		(*d)++;
}

/* The v2 cgroup id of any task (not only current). The programs are tp_btf, so task
 * pointers are BTF-typed: plain loads walk the chain (on 6.18 the JIT makes each a single
 * move), at a fraction of the cost of four bpf_probe_read_kernel() calls, and cheaper than
 * the bpf_get_current_cgroup_id() helper too. */
static __always_inline __u64 hs_task_cgroup(struct task_struct *task)
{
	return task->cgroups->dfl_cgrp->kn->id;
}

#endif
