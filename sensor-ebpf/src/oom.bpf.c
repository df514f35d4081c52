// SPDX-License-Identifier: GPL-2.0
/*
 * OOM kills: a per-cgroup count and a ring buffer record of each victim. The tracepoint
 * runs in the context of whoever ran out of memory, so the victim's cgroup is read from
 * the victim task, not from current.
 */
#include "hs_common.h"

char LICENSE[] SEC("license") = "GPL";

struct hs_oom_event {
	__u64 cgroup_id;
	__u64 time_ns; /* CLOCK_MONOTONIC */
	__u32 pid;
	__u32 _pad;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, HS_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, __u64);
} hs_oom_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} hs_oom_events SEC(".maps");

/* mark_victim(struct task_struct *task, uid_t uid) */
SEC("tp_btf/mark_victim")
int hs_oom_victim(__u64 *ctx)
{
	struct task_struct *victim = (struct task_struct *)ctx[0];

	if (!hs_enabled(HS_PROBE_OOM))
		return 0;

	__u64 cgroup_id = hs_task_cgroup(victim);

	hs_counter_add(&hs_oom_counts, cgroup_id, 1);

	struct hs_oom_event *e = bpf_ringbuf_reserve(&hs_oom_events, sizeof(*e), 0);

	if (!e) {
		hs_count_drop();
		return 0;
	}
	e->cgroup_id = cgroup_id;
	e->time_ns = bpf_ktime_get_ns();
	e->pid = (__u32)victim->tgid;
	e->_pad = 0;
	BPF_CORE_READ_STR_INTO(&e->comm, victim, comm);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
