// SPDX-License-Identifier: GPL-2.0
/*
 * Scheduler probes: run-queue latency (wakeup -> switch-in) as a log2 histogram per cgroup,
 * and CPU time (switch-in -> switch-out) in nanoseconds per cgroup.
 */
#include "hs_common.h"

char LICENSE[] SEC("license") = "GPL";

/* pid -> when it became runnable. Every entry is consumed when its task next switches in
 * (a dying task's last switch-out is not TASK_RUNNING), so a plain hash does not leak, and it
 * is much cheaper than an LRU one; were it ever full, samples would be missed, no more. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, __u32);
	__type(value, __u64);
} hs_runq_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, HS_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct hs_hist);
} hs_runq_hist SEC(".maps");

/* When the task now on this CPU was switched in. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hs_oncpu SEC(".maps");

/* cgroup id -> nanoseconds on a CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, HS_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, __u64);
} hs_cpu_ns SEC(".maps");

static __always_inline void runq_enqueue(struct task_struct *p, __u64 now)
{
	/* tp_btf hands us trusted task pointers: a plain (CO-RE relocated) load is enough and
	 * cheaper than a probe-read. */
	__u32 pid = p->pid;

	if (pid == 0 || !hs_sampled(HS_PROBE_RUNQ))
		return;
	bpf_map_update_elem(&hs_runq_start, &pid, &now, BPF_ANY);
}

/* sched_wakeup(struct task_struct *p) */
SEC("tp_btf/sched_wakeup")
int hs_runq_wake(__u64 *ctx)
{
	runq_enqueue((struct task_struct *)ctx[0], bpf_ktime_get_ns());
	return 0;
}

/* sched_wakeup_new(struct task_struct *p) */
SEC("tp_btf/sched_wakeup_new")
int hs_runq_wake_nw(__u64 *ctx)
{
	runq_enqueue((struct task_struct *)ctx[0], bpf_ktime_get_ns());
	return 0;
}

/* sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next,
 *              unsigned int prev_state); runs with current == prev. */
SEC("tp_btf/sched_switch")
int hs_sched_switch(__u64 *ctx)
{
	struct task_struct *prev = (struct task_struct *)ctx[1];
	struct task_struct *next = (struct task_struct *)ctx[2];
	unsigned int prev_state = (unsigned int)ctx[3];
	__u64 now = bpf_ktime_get_ns();

	if (hs_enabled(HS_PROBE_CPU)) {
		__u32 zero = 0;
		__u64 *since = bpf_map_lookup_elem(&hs_oncpu, &zero);

		if (since) {
			/* The idle task (pid 0) is not a workload. */
			if (*since && now > *since && prev->pid != 0)
				hs_counter_add(&hs_cpu_ns, bpf_get_current_cgroup_id(), now - *since);
			*since = now;
		}
	}

	/* A preempted task goes straight back to the run queue. */
	if (prev_state == HS_TASK_RUNNING)
		runq_enqueue(prev, now);

	__u32 pid = next->pid;
	__u64 *start = bpf_map_lookup_elem(&hs_runq_start, &pid);

	if (!start)
		return 0;
	if (now > *start)
		hs_hist_add(&hs_runq_hist, hs_task_cgroup(next), now - *start);
	bpf_map_delete_elem(&hs_runq_start, &pid);
	return 0;
}
