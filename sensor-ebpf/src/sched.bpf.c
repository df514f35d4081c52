// SPDX-License-Identifier: GPL-2.0
/*
 * Scheduler probes: run-queue latency (runnable -> on a CPU) as a log2 histogram per cgroup,
 * and CPU time in nanoseconds per cgroup, both from one program on sched_switch.
 *
 * sched_switch is the hottest tracepoint there is (twice per round trip of a pipe), so the
 * program reads what the scheduler has already measured instead of measuring again: no clock
 * reads (bpf_ktime_get_ns costs ~40 ns on these VMs, a third of the budget), no wakeup
 * programs, no per-task map, no helper calls at all (bpf_get_current_cgroup_id() measured
 * +54 ns a run against the four plain loads of hs_task_cgroup()). Its cost on a switch is
 * measured build against build by `cargo bench -p homeostat-sensor --bench switch_cost`.
 *  - CPU time: the task's se.sum_exec_runtime (brought up to date before the tracepoint
 *    fires), differenced between its switch-in and switch-out on this CPU.
 *  - Run-queue latency: the task's sched_info.run_delay (the scheduler's sum of its run-queue
 *    waits, CONFIG_SCHED_INFO) grows by exactly the wait before a run when it switches in,
 *    just after this tracepoint; differenced between switch-in and switch-out it is the wait
 *    that preceded the run now ending. So a wait is recorded when its run ends, and covers
 *    wakeups, new tasks and preemptions alike.
 *  - Both are buffered per CPU for the cgroup of the last run that ended, and added to the
 *    per-cgroup maps only when a run of another cgroup ends or the buffer is 100 ms old.
 *    Consecutive switches mostly stay in one cgroup (a pipe's two ends, a pod's threads, idle
 *    in between), so most switches touch no map but a per-CPU array.
 *    The price: what a CPU measured reaches the maps late, at its next flush (at most
 *    HS_FLUSH_AGE_NS later, if it runs anything).
 */
#include "hs_common.h"

char LICENSE[] SEC("license") = "GPL";

/* Flush the per-CPU buffer when it was last flushed this long ago, by the run queue's clock
 * (a node whose tasks all share one cgroup would otherwise leave a CPU's counts unread). */
#define HS_FLUSH_AGE_NS (100 * 1000 * 1000ULL)

/* Deltas above this (18 minutes) are a task we did not see switch in: ignore them. */
#define HS_MAX_DELTA_NS (1ULL << 40)

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, HS_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct hs_hist);
} hs_runq_hist SEC(".maps");

/* cgroup id -> nanoseconds on a CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, HS_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, __u64);
} hs_cpu_ns SEC(".maps");

/* What this CPU is running, and what it has measured but not yet added to the maps. The
 * first eight fields are all a switch reads (64 bytes: one or two cache lines, the struct is
 * only 8-byte aligned), then one histogram slot; the wait count is the slots' sum, worked out
 * at the flush. */
struct hs_cpu_state {
	__u64 task;         /* the task last switched in here (its address); 0 for none or idle */
	__u64 idle;         /* this CPU's idle task (its address), 0 until first seen */
	__u64 runtime_in;   /* its se.sum_exec_runtime then */
	__u64 run_delay_in; /* its sched_info.run_delay then (before this run's wait is added) */
	__u64 cgroup_id;    /* the cgroup of the last run that ended here: the buffer's */
	__u64 flush_at;     /* the run queue's task clock when the buffer is next flushed */
	__u64 cpu_ns;       /* buffered CPU time of cgroup_id */
	__u64 runq_sum_ns;  /* buffered run-queue waits of cgroup_id: their sum, */
	__u64 runq_slots[HS_SLOTS]; /* and their log2 histogram (struct hs_hist's slots) */
	__u64 skip;         /* run-queue waits still to skip before the next sampled one */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hs_cpu_state);
} hs_sched_cpu SEC(".maps");

/* A kernel built without CONFIG_SCHED_INFO has no run_delay: CPU time still works there,
 * run-queue latency records nothing (the field access is relocated away, not refused). */
#define HS_HAS_SCHED_INFO bpf_core_field_exists(((struct task_struct *)0)->sched_info)

static __always_inline __u64 hs_run_delay(struct task_struct *p)
{
	return HS_HAS_SCHED_INFO ? p->sched_info.run_delay : 0;
}

/* Adds the buffer to the per-cgroup maps, empties it and hands it to `cgroup_id`. Not
 * inlined: it runs on a few switches in a hundred or fewer, and inlined its map calls and
 * 300-byte zero histogram make the compiler spill the hot path's registers to the stack. */
static __noinline void flush(struct hs_cpu_state *st, __u64 cgroup_id, __u64 clock)
{
	__u64 waits = 0;

	if (st->cpu_ns) {
		hs_counter_add(&hs_cpu_ns, st->cgroup_id, st->cpu_ns);
		st->cpu_ns = 0;
	}
	for (int i = 0; i < HS_SLOTS; i++)
		waits += st->runq_slots[i];
	if (waits) {
		struct hs_hist *h = hs_hist_get(&hs_runq_hist, st->cgroup_id);

		if (h) {
			h->count += waits;
			h->sum_ns += st->runq_sum_ns;
			for (int i = 0; i < HS_SLOTS; i++)
				h->slots[i] += st->runq_slots[i];
		}
		st->runq_sum_ns = 0;
		__builtin_memset(st->runq_slots, 0, sizeof(st->runq_slots));
	}
	st->cgroup_id = cgroup_id;
	st->flush_at = clock + HS_FLUSH_AGE_NS;
}

/* The run of `prev` that began at this CPU's last switch-in ends: add its CPU time and the
 * run-queue wait that preceded it to the buffer. tp_btf task pointers are trusted: plain
 * loads, each field read once. */
static __always_inline void run_ended(struct hs_cpu_state *st, struct task_struct *prev)
{
	/* The cgroup as the run ends (a task can move while it runs, as `echo $$ >
	 * cgroup.procs` does); another cgroup than the buffer's flushes the buffer first. */
	__u64 cgroup_id = hs_task_cgroup(prev);
	__u64 clock = prev->se.exec_start;

	if (cgroup_id != st->cgroup_id || clock >= st->flush_at)
		flush(st, cgroup_id, clock);

	if (hs_enabled(HS_PROBE_CPU)) {
		__u64 ran = prev->se.sum_exec_runtime - st->runtime_in;

		if (ran < HS_MAX_DELTA_NS)
			st->cpu_ns += ran;
	}

	struct hs_probe_cfg *runq = hs_config_of(HS_PROBE_RUNQ);

	if (!HS_HAS_SCHED_INFO || !runq->enabled)
		return;
	/* 1 in N: the sampling check comes before the read it saves. A countdown, not a
	 * division (tens of cycles). */
	if (runq->sample_every > 1) {
		if (st->skip) {
			st->skip--;
			return;
		}
		st->skip = runq->sample_every - 1;
	}

	__u64 waited = hs_run_delay(prev) - st->run_delay_in;

	if (waited < HS_MAX_DELTA_NS) {
		st->runq_sum_ns += waited;
		st->runq_slots[hs_slot(waited)]++;
	}
}

/* sched_switch(bool preempt, struct task_struct *prev, struct task_struct *next,
 *              unsigned int prev_state); runs with current == prev. */
SEC("tp_btf/sched_switch")
int hs_sched_switch(__u64 *ctx)
{
	struct task_struct *prev = (struct task_struct *)ctx[1];
	struct task_struct *next = (struct task_struct *)ctx[2];
	__u32 zero = 0;
	struct hs_cpu_state *st = bpf_map_lookup_elem(&hs_sched_cpu, &zero);

	if (!st)
		return 0;
	/* Only a run we saw begin (never idle's). */
	if (st->task == (__u64)prev)
		run_ended(st, prev);

	/* The idle task (pid 0) is no workload. Each CPU has its own for good, so its address
	 * is learned once and the switch reads no pid after that. */
	if (!st->idle && next->pid == 0)
		st->idle = (__u64)next;
	if ((__u64)next == st->idle) {
		st->task = 0;
		return 0;
	}
	st->task = (__u64)next;
	st->runtime_in = next->se.sum_exec_runtime;
	st->run_delay_in = hs_run_delay(next);
	return 0;
}
