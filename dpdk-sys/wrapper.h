/* The DPDK headers vrfwd binds; nothing else is generated. */
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_lpm.h>
#include <rte_rcu_qsbr.h>
#include <rte_prefetch.h>
#include <rte_telemetry.h>

/* rte_errno is a per-lcore thread-local behind a macro; bindgen cannot bind it. */
static inline int vrfwd_rte_errno(void) { return rte_errno; }

/* Flags DPDK defines with RTE_BIT64(), which bindgen cannot evaluate. */
enum vrfwd_flags {
	VRFWD_ETH_RSS_IP = RTE_ETH_RSS_IP,
	VRFWD_ETH_RSS_TCP = RTE_ETH_RSS_TCP,
	VRFWD_ETH_RSS_UDP = RTE_ETH_RSS_UDP,
	VRFWD_ETH_RX_OFFLOAD_RSS_HASH = RTE_ETH_RX_OFFLOAD_RSS_HASH,
};
