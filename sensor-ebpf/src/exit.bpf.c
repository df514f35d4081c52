// SPDX-License-Identifier: GPL-2.0
/*
 * Process exits per cgroup by kind (ok / error status / killed by a signal), and a ring
 * buffer record for every exit that was not ok, so crashes can be named.
 */
#include "hs_common.h"

char LICENSE[] SEC("license") = "GPL";

struct hs_exit_counts {
	__u64 ok;
	__u64 error;
	__u64 signal;
};

/* One abnormal exit. */
struct hs_exit_event {
	__u64 cgroup_id;
	__u64 time_ns; /* CLOCK_MONOTONIC */
	__u32 pid;     /* the process (thread group) id */
	__u32 exit_code; /* as wait(2) reports it: status << 8 | signal */
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, HS_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct hs_exit_counts);
} hs_exit_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} hs_exit_events SEC(".maps");

/* sched_process_exit(struct task_struct *p, ...); runs with current == p. A process is
 * counted once, when its thread-group leader exits, as exitsnoop does (the group_dead
 * argument would be exact but only exists on recent kernels). */
SEC("tp_btf/sched_process_exit")
int hs_exit(__u64 *ctx)
{
	struct task_struct *p = (struct task_struct *)ctx[0];

	/* tp_btf task pointers are trusted: plain loads, no probe-reads. */
	int tgid = p->tgid;

	if (p->pid != tgid || !hs_enabled(HS_PROBE_EXIT))
		return 0;

	__u32 code = (__u32)p->exit_code;
	__u64 cgroup_id = hs_task_cgroup(p);
	struct hs_exit_counts zero = {};
	struct hs_exit_counts *c = hs_lookup_or_zero(&hs_exit_counts, &cgroup_id, &zero);

	if (!c)
		return 0;
	if (code & 0x7f)
		c->signal++;
	else if (code >> 8)
		c->error++;
	else {
		c->ok++;
		return 0;
	}

	struct hs_exit_event *e = bpf_ringbuf_reserve(&hs_exit_events, sizeof(*e), 0);

	if (!e) {
		hs_count_drop();
		return 0;
	}
	e->cgroup_id = cgroup_id;
	e->time_ns = bpf_ktime_get_ns();
	e->pid = (__u32)tgid;
	e->exit_code = code;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
