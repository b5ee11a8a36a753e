/*
 * offcast's optional native sender: sends a batch of RTP packets, prepared by
 * the offload in one staging buffer, with sendmmsg(2) — one system call per
 * run of packets for the same socket instead of one libuv send per packet.
 * The JavaScript send path is the fallback when this addon is not built.
 *
 * sendBatch(fds: Int32Array, buf: Uint8Array, offsets: Uint32Array,
 *           lengths: Uint32Array, status: Int32Array, count: number) -> sent
 *   packet i is buf[offsets[i] .. offsets[i] + lengths[i]), sent on the
 *   connected socket fds[i]; status[i] is 0 when sent, else the errno.
 *   Never blocks (MSG_DONTWAIT): a full socket buffer is EAGAIN for that packet.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define RUN 64

static int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, data, &ab, &off) != napi_ok) return 0;
  return type == want;
}

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static napi_value SendBatch(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) return fail(env, "sendBatch: 6 arguments");
  int32_t *fds, *status;
  uint8_t *buf;
  uint32_t *offs, *lens;
  size_t nfds, nbuf, noffs, nlens, nstatus;
  if (!typed(env, argv[0], napi_int32_array, (void **)&fds, &nfds)) return fail(env, "sendBatch: fds must be an Int32Array");
  if (!typed(env, argv[1], napi_uint8_array, (void **)&buf, &nbuf)) return fail(env, "sendBatch: buf must be a Uint8Array");
  if (!typed(env, argv[2], napi_uint32_array, (void **)&offs, &noffs)) return fail(env, "sendBatch: offsets must be a Uint32Array");
  if (!typed(env, argv[3], napi_uint32_array, (void **)&lens, &nlens)) return fail(env, "sendBatch: lengths must be a Uint32Array");
  if (!typed(env, argv[4], napi_int32_array, (void **)&status, &nstatus)) return fail(env, "sendBatch: status must be an Int32Array");
  uint32_t count;
  if (napi_get_value_uint32(env, argv[5], &count) != napi_ok) return fail(env, "sendBatch: count must be a number");
  if (count > nfds || count > noffs || count > nlens || count > nstatus) return fail(env, "sendBatch: count exceeds an array");
  for (uint32_t i = 0; i < count; i++) {
    if ((uint64_t)offs[i] + lens[i] > nbuf) return fail(env, "sendBatch: a packet lies outside buf");
  }

  struct mmsghdr msgs[RUN];
  struct iovec iov[RUN];
  uint32_t sent = 0;
  uint32_t i = 0;
  while (i < count) {
    int fd = fds[i];
    uint32_t n = 0;
    while (i + n < count && n < RUN && fds[i + n] == fd) {
      iov[n].iov_base = buf + offs[i + n];
      iov[n].iov_len = lens[i + n];
      memset(&msgs[n], 0, sizeof(msgs[n]));
      msgs[n].msg_hdr.msg_iov = &iov[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
      n++;
    }
    int r = sendmmsg(fd, msgs, n, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      /* The first packet of the run failed (EAGAIN, ECONNREFUSED from an earlier
         ICMP error...): report it, go on with the next one. */
      status[i] = errno;
      i++;
      continue;
    }
    for (int k = 0; k < r; k++) status[i + k] = 0;
    sent += (uint32_t)r;
    i += (uint32_t)r;
  }
  napi_value result;
  napi_create_uint32(env, sent, &result);
  return result;
}

/*
 * copyBytes(dst: Uint8Array, dstOff, src: Uint8Array, srcOff, len): memcpy
 * between two byte arrays. Buffer#copy of a range allocates a Uint8Array view
 * of the source per call (Node 20); staging a packet's payload takes none here.
 */
static napi_value CopyBytes(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5) return fail(env, "copyBytes: 5 arguments");
  uint8_t *dst, *src;
  size_t ndst, nsrc;
  uint32_t dstOff, srcOff, len;
  if (!typed(env, argv[0], napi_uint8_array, (void **)&dst, &ndst)) return fail(env, "copyBytes: dst must be a Uint8Array");
  if (!typed(env, argv[2], napi_uint8_array, (void **)&src, &nsrc)) return fail(env, "copyBytes: src must be a Uint8Array");
  if (napi_get_value_uint32(env, argv[1], &dstOff) != napi_ok || napi_get_value_uint32(env, argv[3], &srcOff) != napi_ok ||
      napi_get_value_uint32(env, argv[4], &len) != napi_ok)
    return fail(env, "copyBytes: offsets and length must be numbers");
  if ((size_t)dstOff + len > ndst || (size_t)srcOff + len > nsrc) return fail(env, "copyBytes: range outside the arrays");
  memmove(dst + dstOff, src + srcOff, len);
  return NULL;
}

/* The pacing engine (engine.c). */
void engine_init(napi_env env, napi_value exports);

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "sendBatch", NAPI_AUTO_LENGTH, SendBatch, NULL, &fn);
  napi_set_named_property(env, exports, "sendBatch", fn);
  napi_value copy;
  napi_create_function(env, "copyBytes", NAPI_AUTO_LENGTH, CopyBytes, NULL, &copy);
  napi_set_named_property(env, exports, "copyBytes", copy);
  engine_init(env, exports);
  return exports;
}
