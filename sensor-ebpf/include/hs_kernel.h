/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The few kernel types the homeostat probes read, as CO-RE "shadow" structs.
 *
 * Only the fields we read are declared; preserve_access_index makes clang emit a BTF
 * relocation for every access, so libbpf/aya fix the offsets up against the running
 * kernel's BTF at load time. This keeps the build independent of the build machine's
 * kernel (no 135k-line generated vmlinux.h) and keeps plain copies out of contexts legal.
 */
#ifndef HS_KERNEL_H
#define HS_KERNEL_H

#include <linux/types.h>
#include <linux/bpf.h>

#define __hs_core __attribute__((preserve_access_index))

struct kernfs_node {
	__u64 id; /* the cgroup id: the inode number of the cgroup directory */
} __hs_core;

struct cgroup {
	struct kernfs_node *kn;
} __hs_core;

struct css_set {
	struct cgroup *dfl_cgrp; /* the task's cgroup in the v2 (default) hierarchy */
} __hs_core;

struct sched_entity {
	__u64 exec_start;       /* the run queue's task clock when last brought up to date */
	__u64 sum_exec_runtime; /* ns on a CPU, brought up to date before sched_switch fires */
} __hs_core;

/* CONFIG_SCHED_INFO: the scheduler's own run-queue accounting (/proc/<pid>/schedstat). */
struct sched_info {
	unsigned long long run_delay; /* ns spent waiting on a run queue, summed; a wait is
				       * added when the task switches in, after sched_switch */
} __hs_core;

struct task_struct {
	int pid;
	int tgid;
	int exit_code; /* (status << 8) | terminating signal, set before sched_process_exit */
	char comm[16];
	struct css_set *cgroups;
	struct sched_entity se;
	struct sched_info sched_info;
} __hs_core;

struct sock_cgroup_data {
	struct cgroup *cgroup; /* the v2 cgroup of the task that created the socket */
} __hs_core;

struct sock_common {
	unsigned char skc_state;
} __hs_core;

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
	struct sock_cgroup_data sk_cgrp_data;
} __hs_core;

/* TCP states (include/net/tcp_states.h). */
enum {
	HS_TCP_ESTABLISHED = 1,
	HS_TCP_SYN_SENT = 2,
	HS_TCP_TIME_WAIT = 6,
	HS_TCP_CLOSE = 7,
	HS_TCP_NEW_SYN_RECV = 12,
};

#define HS_IPPROTO_TCP 6
#define HS_TASK_RUNNING 0

#endif
