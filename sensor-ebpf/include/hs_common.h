/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every homeostat probe family shares: the probe numbering and the config map that
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

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HS_PROBE_COUNT);
	__type(key, __u32);
	__type(value, struct hs_probe_cfg);
} hs_config SEC(".maps");

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

static __always_inline struct hs_probe_cfg *hs_config_of(__u32 probe)
{
	return bpf_map_lookup_elem(&hs_config, &probe);
}

static __always_inline int hs_enabled(__u32 probe)
{
	struct hs_probe_cfg *cfg = hs_config_of(probe);

	return cfg && cfg->enabled;
}

/* Whether this event starts a latency measurement: probe enabled, and the 1-in-N draw hit. */
static __always_inline int hs_sampled(__u32 probe)
{
	struct hs_probe_cfg *cfg = bpf_map_lookup_elem(&hs_config, &probe);

	if (!cfg || !cfg->enabled)
		return 0;
	return cfg->sample_every <= 1 || bpf_get_prandom_u32() % cfg->sample_every == 0;
}

static __always_inline __u32 hs_log2(__u64 v)
{
	__u32 r = 0;

	/* Branch-light binary search: the verifier likes bounded straight-line code. */
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
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

/* Records one latency in a histogram. */
static __always_inline void hs_hist_record(struct hs_hist *h, __u64 delta_ns)
{
	__u32 slot = hs_log2(delta_ns);

	if (slot >= HS_SLOTS)
		slot = HS_SLOTS - 1;
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
 * pointers are BTF-typed: plain loads (JITed as fault-tolerant PROBE_MEM loads) walk the
 * chain at a fraction of the cost of four bpf_probe_read_kernel() calls. */
static __always_inline __u64 hs_task_cgroup(struct task_struct *task)
{
	return task->cgroups->dfl_cgrp->kn->id;
}

#endif
