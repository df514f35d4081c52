// SPDX-License-Identifier: GPL-2.0
/*
 * TCP trouble per cgroup: retransmitted segments, resets sent and received, and connect
 * latency (SYN_SENT -> ESTABLISHED) as a log2 histogram.
 *
 * Retransmits and received resets happen in softirq context, where current is whoever was
 * interrupted, so they are attributed to the socket's cgroup (set when the socket was
 * created), not to current.
 */
#include "hs_common.h"

char LICENSE[] SEC("license") = "GPL";

struct hs_tcp_counts {
	__u64 retransmits;
	__u64 resets_sent;
	__u64 resets_received;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, HS_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct hs_tcp_counts);
} hs_tcp_counts SEC(".maps");

struct hs_conn_start {
	__u64 time_ns;
	__u64 cgroup_id;
};

/* socket -> when connect() sent the SYN, and from which cgroup. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct hs_conn_start);
} hs_conn_start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, HS_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct hs_hist);
} hs_conn_hist SEC(".maps");

/* The socket's v2 cgroup id; 0 when there is no full socket (a reset answering a segment
 * for no socket, or a time-wait / request mini-socket, which has no cgroup data). */
static __always_inline __u64 sk_cgroup(struct sock *sk)
{
	if (!sk)
		return 0;
	unsigned char state = BPF_CORE_READ(sk, __sk_common.skc_state);

	if (state == HS_TCP_TIME_WAIT || state == HS_TCP_NEW_SYN_RECV)
		return 0;
	return BPF_CORE_READ(sk, sk_cgrp_data.cgroup, kn, id);
}

static __always_inline struct hs_tcp_counts *tcp_counts(struct sock *sk)
{
	__u64 cgroup_id = sk_cgroup(sk);
	struct hs_tcp_counts zero = {};

	return hs_lookup_or_zero(&hs_tcp_counts, &cgroup_id, &zero);
}

/* tcp_retransmit_skb(const struct sock *sk, const struct sk_buff *skb, int reason) */
SEC("tp_btf/tcp_retransmit_skb")
int hs_tcp_retrans(__u64 *ctx)
{
	struct hs_tcp_counts *c;

	if (!hs_enabled(HS_PROBE_TCP_RETRANS))
		return 0;
	c = tcp_counts((struct sock *)ctx[0]);
	if (c)
		c->retransmits++;
	return 0;
}

/* tcp_send_reset(const struct sock *sk, const struct sk_buff *skb, enum sk_rst_reason) */
SEC("tp_btf/tcp_send_reset")
int hs_tcp_send_rst(__u64 *ctx)
{
	struct hs_tcp_counts *c;

	if (!hs_enabled(HS_PROBE_TCP_RESET))
		return 0;
	c = tcp_counts((struct sock *)ctx[0]);
	if (c)
		c->resets_sent++;
	return 0;
}

/* tcp_receive_reset(struct sock *sk) */
SEC("tp_btf/tcp_receive_reset")
int hs_tcp_recv_rst(__u64 *ctx)
{
	struct hs_tcp_counts *c;

	if (!hs_enabled(HS_PROBE_TCP_RESET))
		return 0;
	c = tcp_counts((struct sock *)ctx[0]);
	if (c)
		c->resets_received++;
	return 0;
}

/* inet_sock_set_state(const struct sock *sk, const int oldstate, const int newstate) */
SEC("tp_btf/inet_sock_set_state")
int hs_tcp_state(__u64 *ctx)
{
	struct sock *sk = (struct sock *)ctx[0];
	int oldstate = (int)ctx[1];
	int newstate = (int)ctx[2];
	__u64 key = (__u64)sk;

	if (BPF_CORE_READ(sk, sk_protocol) != HS_IPPROTO_TCP)
		return 0;

	if (newstate == HS_TCP_SYN_SENT) {
		/* connect() is running: current is the connecting task. */
		if (!hs_sampled(HS_PROBE_TCP_CONNECT))
			return 0;
		struct hs_conn_start s = {
			.time_ns = bpf_ktime_get_ns(),
			.cgroup_id = bpf_get_current_cgroup_id(),
		};
		bpf_map_update_elem(&hs_conn_start, &key, &s, BPF_ANY);
		return 0;
	}
	if (oldstate != HS_TCP_SYN_SENT)
		return 0;

	struct hs_conn_start *s = bpf_map_lookup_elem(&hs_conn_start, &key);

	if (!s)
		return 0;
	if (newstate == HS_TCP_ESTABLISHED) {
		__u64 now = bpf_ktime_get_ns();

		if (now > s->time_ns)
			hs_hist_add(&hs_conn_hist, s->cgroup_id, now - s->time_ns);
	}
	/* Established or failed (CLOSE): either way the measurement is over. */
	bpf_map_delete_elem(&hs_conn_start, &key);
	return 0;
}
