// Reads the destination a connection had before an iptables REDIRECT rewrote it.
// Node has no API for SO_ORIGINAL_DST, so this is the one piece of native code in hostmesh.
// It is plain Node-API (ABI-stable), so one build works on every Node release >= 18.
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <node_api.h>
#include "napi-util.h"
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

// originalDst(fd: number, family: 4 | 6) -> { address, port, family }
// family is the conntrack family to ask: an IPv4 connection accepted on a dual-stack
// IPv6 socket is still tracked as IPv4, so the caller decides from the peer address.
static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1, family = 4;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int32(env, argv[1], &family) != napi_ok || (family != 4 && family != 6)) {
    napi_throw_type_error(env, "EINVAL", "originalDst(fd, family): fd must be a number and family 4 or 6");
    return NULL;
  }
  char text[INET6_ADDRSTRLEN];
  if (family == 4) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sa, &len) != 0)
      return throw_errno(env, errno, "getsockopt(SO_ORIGINAL_DST)");
    inet_ntop(AF_INET, &sa.sin_addr, text, sizeof text);
    return address_result(env, text, ntohs(sa.sin_port), 4);
  }
  struct sockaddr_in6 sa6;
  socklen_t len6 = sizeof sa6;
  memset(&sa6, 0, sizeof sa6);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &sa6, &len6) != 0)
    return throw_errno(env, errno, "getsockopt(IP6T_SO_ORIGINAL_DST)");
  inet_ntop(AF_INET6, &sa6.sin6_addr, text, sizeof text);
  return address_result(env, text, ntohs(sa6.sin6_port), 6);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &fn);
  napi_set_named_property(env, exports, "originalDst", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
