// SPDX-License-Identifier: GPL-2.0
/*
 * Block I/O latency, issue to the device -> completion, as a log2 histogram per cgroup.
 *
 * Attributed to the cgroup current at issue time: the writer when it submits directly
 * (O_DIRECT, fsync with a plug), a kworker's cgroup (usually the root) for writeback.
 */
#include "hs_common.h"

char LICENSE[] SEC("license") = "GPL";

struct hs_bio_start {
	__u64 time_ns;
	__u64 cgroup_id;
};

/* struct request * -> issue time and cgroup. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct hs_bio_start);
} hs_bio_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, HS_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct hs_hist);
} hs_bio_hist SEC(".maps");

/* block_rq_issue(struct request *rq) */
SEC("tp_btf/block_rq_issue")
int hs_bio_issue(__u64 *ctx)
{
	__u64 rq = ctx[0];

	if (!hs_sampled(HS_PROBE_BLOCK))
		return 0;
	struct hs_bio_start s = {
		.time_ns = bpf_ktime_get_ns(),
		.cgroup_id = bpf_get_current_cgroup_id(),
	};
	bpf_map_update_elem(&hs_bio_start, &rq, &s, BPF_ANY);
	return 0;
}

/* block_rq_complete(struct request *rq, blk_status_t error, unsigned int nr_bytes) */
SEC("tp_btf/block_rq_complete")
int hs_bio_done(__u64 *ctx)
{
	__u64 rq = ctx[0];
	struct hs_bio_start *s = bpf_map_lookup_elem(&hs_bio_start, &rq);

	if (!s)
		return 0;
	__u64 now = bpf_ktime_get_ns();

	if (now > s->time_ns)
		hs_hist_add(&hs_bio_hist, s->cgroup_id, now - s->time_ns);
	bpf_map_delete_elem(&hs_bio_start, &rq);
	return 0;
}
