// The two things systemd integration needs that Node has no API for: sending a datagram to
// the AF_UNIX notify socket (with file descriptors attached, for the fd store), and looking
// at an inherited socket before handing it to Node (is it a listening TCP socket, and on
// which address). Plain Node-API, like origdst.c.
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <node_api.h>
#include "napi-util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 64

// notify(socketPath: string, message: string, fds: number[]) -> undefined
// socketPath as in $NOTIFY_SOCKET: a filesystem path, or "@name" for the abstract namespace.
static napi_value notify(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  size_t path_len = 0, msg_len = 0;
  uint32_t nfds = 0;
  bool is_array = false;
  if (argc < 3 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], NULL, 0, &msg_len) != napi_ok ||
      napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[2], &nfds) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "notify(socketPath, message, fds): expected a string, a string and an array of fds");
    return NULL;
  }
  if (path_len == 0 || path_len >= sizeof(((struct sockaddr_un *)0)->sun_path) || nfds > MAX_FDS) {
    napi_throw_range_error(env, "EINVAL", "notify: socket path empty or too long, or too many fds");
    return NULL;
  }
  char *msg = malloc(msg_len + 1);
  if (!msg) return throw_errno(env, ENOMEM, "notify");
  napi_get_value_string_utf8(env, argv[1], msg, msg_len + 1, &msg_len);
  int fds[MAX_FDS];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value v;
    napi_get_element(env, argv[2], i, &v);
    if (napi_get_value_int32(env, v, &fds[i]) != napi_ok || fds[i] < 0) {
      free(msg);
      napi_throw_type_error(env, "EINVAL", "notify: every fd must be a non-negative integer");
      return NULL;
    }
  }

  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, path_len);
  if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';
  socklen_t sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);

  struct iovec iov = { .iov_base = msg, .iov_len = msg_len };
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_name = &sa;
  mh.msg_namelen = sa_len;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)]; } control;
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    mh.msg_control = control.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    int err = errno;
    free(msg);
    return throw_errno(env, err, "socket(AF_UNIX, SOCK_DGRAM)");
  }
  ssize_t n = sendmsg(s, &mh, MSG_NOSIGNAL);
  int err = errno;
  close(s);
  free(msg);
  if (n < 0) return throw_errno(env, err, "sendmsg to $NOTIFY_SOCKET");
  return NULL;
}

// listeningSocket(fd: number) -> { family: 4|6, address, port } | null
// null: fd is not a listening TCP socket. Also sets FD_CLOEXEC, as sd_listen_fds does, so
// inherited sockets do not leak into the programs the daemon runs (iptables-restore).
static napi_value listening_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], nul;
  napi_get_null(env, &nul);
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "EINVAL", "listeningSocket(fd): fd must be a non-negative integer");
    return NULL;
  }
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) return throw_errno(env, errno, "fcntl(F_GETFD)");
  if (fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) return throw_errno(env, errno, "fcntl(F_SETFD)");
  int type = 0, accepting = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) return errno == ENOTSOCK ? nul : throw_errno(env, errno, "getsockopt(SO_TYPE)");
  len = sizeof accepting;
  if (type != SOCK_STREAM || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting) return nul;
  struct sockaddr_storage ss;
  len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return throw_errno(env, errno, "getsockname");
  char text[INET6_ADDRSTRLEN];
  int port, family;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    port = ntohs(a->sin_port);
    family = 4;
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    port = ntohs(a->sin6_port);
    family = 6;
  } else {
    return nul;
  }
  return address_result(env, text, port, family);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "notify", NAPI_AUTO_LENGTH, notify, NULL, &fn);
  napi_set_named_property(env, exports, "notify", fn);
  napi_create_function(env, "listeningSocket", NAPI_AUTO_LENGTH, listening_socket, NULL, &fn);
  napi_set_named_property(env, exports, "listeningSocket", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
