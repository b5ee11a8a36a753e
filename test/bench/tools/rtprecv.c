/*
 * rtprecv: measures RTP streams arriving on 127.0.0.0/8 UDP ports.
 *
 * One socket per port, epoll over all of them, recvmmsg batches, kernel
 * receive timestamps (SO_TIMESTAMPNS). Per stream it tracks counts, sequence
 * numbers (loss, duplicates, reordering) and lateness against the schedule
 * implied by the RTP timestamps. Writes one JSON report at the end.
 *
 * Lateness: d_i = A_i - T_i/clock (arrival minus media time). The ideal
 * schedule is the lower envelope of d: base = min d_i over the stream after
 * warmup (or a low quantile with --base-quantile), lateness_i = d_i - base.
 * Samples of d_i are kept per stream in an array bounded by a per-stream cap
 * (reservoir sampling beyond it, each kept sample then weighs seen/kept), and
 * folded into histograms when the stream ends: base is only known then.
 * min and max of d_i are tracked exactly, so the max lateness is exact.
 *
 * Build: cc -O2 -Wall -Wextra -o rtprecv rtprecv.c -lm
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define SLOT_BYTES 65536
/* Sequence window for duplicate detection: ext seqs in (max - WIN, max]. */
#define SEQ_WIN 4096
/* Starting extended values far from zero so that packets older than the
 * first one never go negative. */
#define EXT_SEQ_ORIGIN ((int64_t)65536 * 1024)
#define EXT_TS_ORIGIN ((int64_t)1 << 40)
/* Samples are stored as int32 in units of 100 ns: +-214 s around the
 * segment's first packet, enough for any sane clock drift. */
#define SAMPLE_NS 100
/* Pooled histogram: 10 us bins over 0..1000 ms, plus one overflow bin. */
#define POOL_BIN_NS 10000LL
#define POOL_BINS 100000
/* Per-stream histogram: 100 us bins over 0..200 ms, plus one overflow bin. */
#define STREAM_BIN_NS 100000LL
#define STREAM_BINS 2000

struct options {
	struct in_addr host;
	int port_base, count, step;
	double clock;
	char *clock_map;
	double duration, max_seconds, warmup;
	long rcvbuf;
	const char *json_path;
	int stop_on_stdin_eof, per_stream, verify_payload;
	double base_quantile;
	long samples_per_stream, sample_budget;
};

struct stream {
	int fd, port;
	double clock;
	uint64_t packets, bytes, nonrtp, markers, dups, reordered, mismatches;
	uint32_t size_min, size_max;
	int have_ssrc, pt;
	uint32_t ssrc, ssrc_changes;
	int64_t first_arrival_ns;
	/* current SSRC segment: sequence tracking */
	int64_t ext_base, ext_max;
	uint64_t unique, lost_closed;
	uint64_t win[SEQ_WIN / 64];
	/* current SSRC segment: timestamps and lateness samples */
	int64_t ts_ref, ts0, a0_ns;
	int64_t dmin_ns, dmax_ns;
	uint64_t seen;
	int32_t *samples;
	uint32_t nsamp, cap;
	/* lateness results, folded in as segments close */
	float *hist;
	double lat_weight, lat_max_ms, p99_ms;
	int has_lateness;
};

static struct options opt;
static struct stream *streams;
static double *pool_hist;
static double pool_total, pool_max_ms = -1;
static uint32_t sample_cap;
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t user_ts_packets;
static int64_t first_arrival_ns = -1, last_arrival_ns = -1;
static int samples_were_sampled;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("rtprecv: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static uint64_t rng_next(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t real_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Thousands of sockets exceed the usual soft limit of 1024 descriptors. */
static void raise_fd_limit(int needed)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)needed + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static double parse_num(const char *name, const char *s, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		die("%s must be a number in [%g, %g], got '%s'", name, lo, hi, s);
	return v;
}

static void usage(void)
{
	fputs("usage: rtprecv --port-base P [--host 127.0.0.1] [--count N] [--step S]\n"
	      "  [--clock HZ] [--clock-map port:hz,...] [--duration SEC] [--max-seconds SEC]\n"
	      "  [--warmup SEC] [--rcvbuf BYTES] [--json PATH] [--stop-on-stdin-eof]\n"
	      "  [--per-stream] [--verify-payload] [--base-quantile Q]\n"
	      "  [--samples-per-stream K] [--sample-budget K]\n", stderr);
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	inet_pton(AF_INET, "127.0.0.1", &opt.host);
	opt.port_base = -1;
	opt.count = 1;
	opt.step = 2;
	opt.clock = 48000;
	opt.max_seconds = 600;
	opt.samples_per_stream = 200000;
	opt.sample_budget = 16000000;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VAL() (v ? (i++, v) : (die("%s needs a value", a), ""))
		if (!strcmp(a, "--host")) {
			const char *h = VAL();
			if (inet_pton(AF_INET, h, &opt.host) != 1)
				die("--host must be an IPv4 address, got '%s'", h);
			/* Measuring tools stay on loopback: they must never flood a network. */
			if ((ntohl(opt.host.s_addr) >> 24) != 127)
				die("--host %s is outside 127.0.0.0/8; refusing", h);
		} else if (!strcmp(a, "--port-base")) opt.port_base = (int)parse_num(a, VAL(), 1, 65535);
		else if (!strcmp(a, "--count")) opt.count = (int)parse_num(a, VAL(), 1, 65535);
		else if (!strcmp(a, "--step")) opt.step = (int)parse_num(a, VAL(), 1, 65535);
		else if (!strcmp(a, "--clock")) opt.clock = parse_num(a, VAL(), 1, 1e9);
		else if (!strcmp(a, "--clock-map")) opt.clock_map = (char *)VAL();
		else if (!strcmp(a, "--duration")) opt.duration = parse_num(a, VAL(), 0, 1e7);
		else if (!strcmp(a, "--max-seconds")) opt.max_seconds = parse_num(a, VAL(), 0.001, 1e7);
		else if (!strcmp(a, "--warmup")) opt.warmup = parse_num(a, VAL(), 0, 1e7);
		else if (!strcmp(a, "--rcvbuf")) opt.rcvbuf = (long)parse_num(a, VAL(), 0, 1 << 30);
		else if (!strcmp(a, "--json")) opt.json_path = VAL();
		else if (!strcmp(a, "--base-quantile")) opt.base_quantile = parse_num(a, VAL(), 0, 0.5);
		else if (!strcmp(a, "--samples-per-stream")) opt.samples_per_stream = (long)parse_num(a, VAL(), 16, 1e8);
		else if (!strcmp(a, "--sample-budget")) opt.sample_budget = (long)parse_num(a, VAL(), 16, 1e9);
		else if (!strcmp(a, "--stop-on-stdin-eof")) opt.stop_on_stdin_eof = 1;
		else if (!strcmp(a, "--per-stream")) opt.per_stream = 1;
		else if (!strcmp(a, "--verify-payload")) opt.verify_payload = 1;
		else if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage();
		else die("unknown argument '%s'", a);
#undef VAL
	}
	if (opt.port_base < 0)
		die("--port-base is required");
	if ((long)opt.port_base + (long)(opt.count - 1) * opt.step > 65535)
		die("--port-base %d + (--count %d - 1) * --step %d exceeds 65535", opt.port_base, opt.count, opt.step);
}

static void apply_clock_map(void)
{
	for (int i = 0; i < opt.count; i++)
		streams[i].clock = opt.clock;
	if (!opt.clock_map)
		return;
	char *map = strdup(opt.clock_map), *save = NULL;
	for (char *item = strtok_r(map, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(item, ':');
		if (!colon)
			die("--clock-map entries are port:hz, got '%s'", item);
		*colon = 0;
		int port = (int)parse_num("--clock-map port", item, 1, 65535);
		double hz = parse_num("--clock-map hz", colon + 1, 1, 1e9);
		int off = port - opt.port_base;
		if (off < 0 || off % opt.step || off / opt.step >= opt.count)
			die("--clock-map port %d is not one of the listening ports", port);
		streams[off / opt.step].clock = hz;
	}
	free(map);
}

/* RcvbufErrors from the "Udp:" lines of /proc/net/snmp; -1 if unreadable. */
static long long read_rcvbuf_errors(void)
{
	FILE *f = fopen("/proc/net/snmp", "r");
	if (!f)
		return -1;
	char names[1024], values[1024];
	long long result = -1;
	while (fgets(names, sizeof names, f)) {
		if (strncmp(names, "Udp: ", 5))
			continue;
		if (!fgets(values, sizeof values, f))
			break;
		char *sn = NULL, *sv = NULL;
		char *n = strtok_r(names + 5, " \n", &sn), *v = strtok_r(values + 5, " \n", &sv);
		for (; n && v; n = strtok_r(NULL, " \n", &sn), v = strtok_r(NULL, " \n", &sv))
			if (!strcmp(n, "RcvbufErrors")) {
				result = atoll(v);
				break;
			}
		break;
	}
	fclose(f);
	return result;
}

/* Payload byte k of the packet (ssrc, seq): the formula shared with rtpsend
 * and drive.mjs expectedPayload(). */
static void fill_expected_payload(uint8_t *dst, size_t len, uint32_t ssrc, uint16_t seq)
{
	uint8_t c[4];
	for (int q = 0; q < 4; q++)
		c[q] = (uint8_t)((ssrc >> (8 * q)) + 7u * seq);
	/* The pattern repeats every 256 bytes: compute one period, copy the rest. */
	size_t period = len < 256 ? len : 256;
	for (size_t k = 0; k < period; k++)
		dst[k] = (uint8_t)(c[k & 3] + k);
	for (size_t k = period; k < len; k += period)
		memcpy(dst + k, dst, len - k < period ? len - k : period);
}

static void pool_add(int64_t lat_ns, double w, float *hist)
{
	int64_t b = lat_ns / POOL_BIN_NS;
	pool_hist[b < POOL_BINS ? b : POOL_BINS] += w;
	int64_t sb = lat_ns / STREAM_BIN_NS;
	hist[sb < STREAM_BINS ? sb : STREAM_BINS] += (float)w;
}

static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return (x > y) - (x < y);
}

/* Fold the current segment's samples into the histograms: base is known now. */
static void close_lateness_segment(struct stream *s)
{
	if (!s->nsamp)
		return;
	int64_t base_ns = s->dmin_ns;
	if (opt.base_quantile > 0) {
		qsort(s->samples, s->nsamp, sizeof *s->samples, cmp_i32);
		uint32_t idx = (uint32_t)floor(opt.base_quantile * (s->nsamp - 1));
		base_ns = (int64_t)s->samples[idx] * SAMPLE_NS;
	}
	if (!s->hist && !(s->hist = calloc(STREAM_BINS + 1, sizeof *s->hist)))
		die("out of memory");
	double w = (double)s->seen / s->nsamp;
	for (uint32_t i = 0; i < s->nsamp; i++) {
		int64_t lat = (int64_t)s->samples[i] * SAMPLE_NS - base_ns;
		pool_add(lat > 0 ? lat : 0, w, s->hist);
	}
	s->lat_weight += (double)s->seen;
	pool_total += (double)s->seen;
	double max_ms = (double)(s->dmax_ns - base_ns) / 1e6;
	if (max_ms > s->lat_max_ms)
		s->lat_max_ms = max_ms;
	if (max_ms > pool_max_ms)
		pool_max_ms = max_ms;
	s->has_lateness = 1;
	s->nsamp = 0;
	s->seen = 0;
}

static void close_seq_segment(struct stream *s)
{
	if (!s->have_ssrc)
		return;
	int64_t expected = s->ext_max - s->ext_base + 1;
	/* Negative only if duplicates older than the window were counted as unique. */
	if (expected > (int64_t)s->unique)
		s->lost_closed += (uint64_t)(expected - (int64_t)s->unique);
}

static void open_segment(struct stream *s, uint32_t ssrc, uint16_t seq, uint32_t ts, int64_t arrival_ns)
{
	s->ssrc = ssrc;
	s->have_ssrc = 1;
	s->ext_base = s->ext_max = EXT_SEQ_ORIGIN + seq;
	s->unique = 0;
	memset(s->win, 0, sizeof s->win);
	s->ts_ref = s->ts0 = EXT_TS_ORIGIN + ts;
	s->a0_ns = arrival_ns;
	s->dmin_ns = INT64_MAX;
	s->dmax_ns = INT64_MIN;
}

static inline int win_test_set(struct stream *s, int64_t ext)
{
	uint64_t bit = (uint64_t)ext % SEQ_WIN;
	uint64_t mask = 1ULL << (bit & 63);
	int was = (s->win[bit >> 6] & mask) != 0;
	s->win[bit >> 6] |= mask;
	return was;
}

static inline void win_clear(struct stream *s, int64_t ext)
{
	uint64_t bit = (uint64_t)ext % SEQ_WIN;
	s->win[bit >> 6] &= ~(1ULL << (bit & 63));
}

/* Returns 1 if this packet is a duplicate. */
static int track_seq(struct stream *s, uint16_t seq)
{
	int64_t ext = s->ext_max + (int16_t)(uint16_t)(seq - (uint16_t)s->ext_max);
	if (s->unique == 0) {
		win_test_set(s, ext);
		s->unique = 1;
		return 0;
	}
	if (ext > s->ext_max) {
		if (ext - s->ext_max >= SEQ_WIN)
			memset(s->win, 0, sizeof s->win);
		else
			for (int64_t e = s->ext_max + 1; e < ext; e++)
				win_clear(s, e);
		win_clear(s, ext);
		win_test_set(s, ext);
		s->ext_max = ext;
		s->unique++;
		return 0;
	}
	if (ext > s->ext_max - SEQ_WIN) {
		if (win_test_set(s, ext)) {
			s->dups++;
			return 1;
		}
	}
	/* Older than the newest: it arrived late (or before the first one seen). */
	s->reordered++;
	s->unique++;
	if (ext < s->ext_base)
		s->ext_base = ext;
	return 0;
}

static void add_sample(struct stream *s, int64_t d_ns)
{
	if (d_ns < s->dmin_ns)
		s->dmin_ns = d_ns;
	if (d_ns > s->dmax_ns)
		s->dmax_ns = d_ns;
	int64_t q = d_ns / SAMPLE_NS;
	int32_t v = q > INT32_MAX ? INT32_MAX : q < INT32_MIN ? INT32_MIN : (int32_t)q;
	s->seen++;
	if (s->nsamp < s->cap) {
		s->samples[s->nsamp++] = v;
		return;
	}
	if (s->cap < sample_cap) {
		uint32_t ncap = s->cap ? s->cap * 2 : 1024;
		if (ncap > sample_cap)
			ncap = sample_cap;
		int32_t *p = realloc(s->samples, (size_t)ncap * sizeof *p);
		if (!p)
			die("out of memory for lateness samples");
		s->samples = p;
		s->cap = ncap;
		s->samples[s->nsamp++] = v;
		return;
	}
	/* Reservoir sampling (algorithm R): keeps a uniform sample of the segment. */
	samples_were_sampled = 1;
	uint64_t j = rng_next() % s->seen;
	if (j < s->cap)
		s->samples[j] = v;
}

static int is_rtp(const uint8_t *p, uint32_t len, uint32_t *payload_off, uint32_t *payload_len)
{
	if (len < 12 || (p[0] >> 6) != 2)
		return 0;
	/* RFC 5761: second byte 192..223 is RTCP, not RTP. */
	if (p[1] >= 192 && p[1] <= 223)
		return 0;
	uint32_t off = 12 + 4u * (p[0] & 0x0f);
	if (p[0] & 0x10) {
		if (off + 4 > len)
			return 0;
		off += 4 + 4u * ((uint32_t)p[off + 2] << 8 | p[off + 3]);
	}
	if (off > len)
		return 0;
	uint32_t pad = 0;
	if (p[0] & 0x20) {
		pad = p[len - 1];
		if (pad == 0 || pad > len - off)
			return 0;
	}
	*payload_off = off;
	*payload_len = len - off - pad;
	return 1;
}

static uint8_t verify_scratch[SLOT_BYTES];

static void on_packet(struct stream *s, const uint8_t *p, uint32_t len, int64_t arrival_ns)
{
	uint32_t poff, plen;
	if (!is_rtp(p, len, &poff, &plen)) {
		s->nonrtp++;
		return;
	}
	uint16_t seq = (uint16_t)(p[2] << 8 | p[3]);
	uint32_t ts = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
	uint32_t ssrc = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];

	if (first_arrival_ns < 0 || arrival_ns < first_arrival_ns)
		first_arrival_ns = arrival_ns;
	if (arrival_ns > last_arrival_ns)
		last_arrival_ns = arrival_ns;
	if (!s->packets)
		s->first_arrival_ns = arrival_ns;
	s->packets++;
	s->bytes += len;
	if (len < s->size_min)
		s->size_min = len;
	if (len > s->size_max)
		s->size_max = len;
	s->pt = p[1] & 0x7f;
	if (p[1] & 0x80)
		s->markers++;
	if (opt.verify_payload) {
		fill_expected_payload(verify_scratch, plen, ssrc, seq);
		if (memcmp(verify_scratch, p + poff, plen))
			s->mismatches++;
	}

	/* A new SSRC is a new source: its sequence and timestamp spaces are unrelated. */
	if (!s->have_ssrc || ssrc != s->ssrc) {
		if (s->have_ssrc) {
			s->ssrc_changes++;
			close_seq_segment(s);
			close_lateness_segment(s);
		}
		open_segment(s, ssrc, seq, ts, arrival_ns);
	}
	if (track_seq(s, seq))
		return; /* a duplicate says nothing new about timing */

	int64_t ext_ts = s->ts_ref + (int32_t)(ts - (uint32_t)s->ts_ref);
	if (ext_ts > s->ts_ref)
		s->ts_ref = ext_ts;
	if ((double)(arrival_ns - s->first_arrival_ns) < opt.warmup * 1e9)
		return;
	double media_ns = (double)(ext_ts - s->ts0) * 1e9 / s->clock;
	add_sample(s, (int64_t)llround((double)(arrival_ns - s->a0_ns) - media_ns));
}

static struct mmsghdr msgs[BATCH];
static struct iovec iovs[BATCH];
static uint8_t *slots;
static union {
	char buf[CMSG_SPACE(sizeof(struct timespec))];
	struct cmsghdr align;
} ctrl[BATCH];

/* Drains up to max_batches batches from one socket; returns packets read. */
static int drain(struct stream *s, int max_batches)
{
	int total = 0;
	for (int b = 0; b < max_batches; b++) {
		for (int i = 0; i < BATCH; i++) {
			msgs[i].msg_hdr.msg_control = ctrl[i].buf;
			msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i].buf;
			msgs[i].msg_hdr.msg_flags = 0;
		}
		int n = recvmmsg(s->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				break;
			die("recvmmsg on port %d: %s", s->port, strerror(errno));
		}
		int64_t user_ns = -1;
		for (int i = 0; i < n; i++) {
			int64_t at = -1;
			for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c))
				if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
					struct timespec ts;
					memcpy(&ts, CMSG_DATA(c), sizeof ts);
					at = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
				}
			if (at < 0) {
				if (user_ns < 0)
					user_ns = real_now_ns();
				at = user_ns;
				user_ts_packets++;
			}
			on_packet(s, slots + (size_t)i * SLOT_BYTES, msgs[i].msg_len, at);
		}
		total += n;
		if (n < BATCH)
			break;
	}
	return total;
}

static void open_sockets(int ep)
{
	int force = geteuid() == 0;
	for (int i = 0; i < opt.count; i++) {
		struct stream *s = &streams[i];
		s->port = opt.port_base + i * opt.step;
		s->size_min = UINT32_MAX;
		s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s->fd < 0)
			die("socket: %s", strerror(errno));
		int one = 1;
		if (setsockopt(s->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
			fprintf(stderr, "rtprecv: SO_TIMESTAMPNS unavailable (%s); using user-space time\n", strerror(errno));
		if (opt.rcvbuf > 0) {
			int v = (int)opt.rcvbuf;
			/* SO_RCVBUFFORCE ignores net.core.rmem_max; it needs CAP_NET_ADMIN. */
			if (!force || setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0) {
				force = 0;
				setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
			}
		}
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->port), .sin_addr = opt.host };
		if (bind(s->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
			die("bind %s:%d: %s", inet_ntoa(opt.host), s->port, strerror(errno));
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0)
			die("epoll_ctl: %s", strerror(errno));
	}
}

static double hist_quantile(const double *h, int bins, double total, double q, double bin_ms, double max_ms)
{
	double target = q * total, cum = 0;
	for (int b = 0; b <= bins; b++) {
		cum += h[b];
		if (cum >= target && h[b] > 0) {
			double v = b == bins ? max_ms : (b + 1) * bin_ms;
			return v < max_ms ? v : max_ms;
		}
	}
	return max_ms;
}

static double stream_p99(const struct stream *s)
{
	double target = 0.99 * s->lat_weight, cum = 0;
	double bin_ms = STREAM_BIN_NS / 1e6;
	for (int b = 0; b <= STREAM_BINS; b++) {
		cum += s->hist[b];
		if (cum >= target && s->hist[b] > 0) {
			double v = b == STREAM_BINS ? s->lat_max_ms : (b + 1) * bin_ms;
			return v < s->lat_max_ms ? v : s->lat_max_ms;
		}
	}
	return s->lat_max_ms;
}

static uint64_t stream_lost(const struct stream *s)
{
	return s->lost_closed;
}

static void json_num(FILE *f, double v)
{
	if (isfinite(v))
		fprintf(f, "%.6g", v);
	else
		fputs("null", f);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int cmp_worst(const void *a, const void *b)
{
	const struct stream *x = *(struct stream *const *)a, *y = *(struct stream *const *)b;
	double px = x->has_lateness ? x->p99_ms : -1, py = y->has_lateness ? y->p99_ms : -1;
	if (px != py)
		return px < py ? 1 : -1;
	uint64_t lx = stream_lost(x), ly = stream_lost(y);
	if (lx != ly)
		return lx < ly ? 1 : -1;
	return x->port - y->port;
}

static void write_report(FILE *f, const char *timestamp_source, int rcvbuf_got, long long rcvbuf_delta)
{
	uint64_t packets = 0, bytes = 0, lost = 0, dups = 0, reord = 0, nonrtp = 0, markers = 0, mism = 0;
	uint64_t ssrc_changes = 0;
	uint32_t smin = UINT32_MAX, smax = 0;
	int active = 0, with_lat = 0;
	double *p99s = calloc((size_t)opt.count + 1, sizeof *p99s);
	struct stream **order = calloc((size_t)opt.count + 1, sizeof *order);
	if (!p99s || !order)
		die("out of memory");
	for (int i = 0; i < opt.count; i++) {
		struct stream *s = &streams[i];
		packets += s->packets;
		bytes += s->bytes;
		lost += stream_lost(s);
		dups += s->dups;
		reord += s->reordered;
		nonrtp += s->nonrtp;
		markers += s->markers;
		mism += s->mismatches;
		ssrc_changes += s->ssrc_changes;
		if (s->packets) {
			active++;
			if (s->size_min < smin) smin = s->size_min;
			if (s->size_max > smax) smax = s->size_max;
		}
		if (s->has_lateness) {
			s->p99_ms = stream_p99(s);
			p99s[with_lat++] = s->p99_ms;
		}
		order[i] = s;
	}
	double dur = packets ? (double)(last_arrival_ns - first_arrival_ns) / 1e9 : 0;
	fprintf(f, "{\"timestampSource\":\"%s\",\"streams\":%d,\"activeStreams\":%d", timestamp_source, opt.count, active);
	fprintf(f, ",\"packets\":%llu,\"bytes\":%llu,\"durationSec\":", (unsigned long long)packets, (unsigned long long)bytes);
	json_num(f, dur);
	fputs(",\"packetsPerSec\":", f);
	json_num(f, dur > 0 ? packets / dur : 0);
	fprintf(f, ",\"lost\":%llu,\"duplicates\":%llu,\"reordered\":%llu,\"nonRtp\":%llu,\"ssrcChanges\":%llu,\"markers\":%llu",
		(unsigned long long)lost, (unsigned long long)dups, (unsigned long long)reord, (unsigned long long)nonrtp,
		(unsigned long long)ssrc_changes, (unsigned long long)markers);
	if (opt.verify_payload)
		fprintf(f, ",\"payloadMismatches\":%llu", (unsigned long long)mism);
	if (packets)
		fprintf(f, ",\"sizeMin\":%u,\"sizeMax\":%u", smin, smax);
	else
		fputs(",\"sizeMin\":null,\"sizeMax\":null", f);
	fputs(",\"lateness\":", f);
	if (pool_total > 0) {
		static const double qs[] = { 0.5, 0.9, 0.99, 0.999 };
		static const char *names[] = { "p50", "p90", "p99", "p999" };
		fputc('{', f);
		for (int i = 0; i < 4; i++) {
			fprintf(f, "\"%s\":", names[i]);
			json_num(f, hist_quantile(pool_hist, POOL_BINS, pool_total, qs[i], POOL_BIN_NS / 1e6, pool_max_ms));
			fputc(',', f);
		}
		fputs("\"max\":", f);
		json_num(f, pool_max_ms);
		fputc('}', f);
	} else {
		fputs("null", f);
	}
	fputs(",\"perStreamP99\":", f);
	if (with_lat) {
		qsort(p99s, (size_t)with_lat, sizeof *p99s, cmp_double);
		fputs("{\"p50\":", f);
		json_num(f, p99s[(with_lat - 1) / 2]);
		fputs(",\"max\":", f);
		json_num(f, p99s[with_lat - 1]);
		fputc('}', f);
	} else {
		fputs("null", f);
	}
	qsort(order, (size_t)opt.count, sizeof *order, cmp_worst);
	fputs(",\"worstStreams\":[", f);
	for (int i = 0, n = 0; i < opt.count && n < 5; i++) {
		struct stream *s = order[i];
		if (!s->packets)
			continue;
		fprintf(f, "%s{\"port\":%d,\"p99\":", n ? "," : "", s->port);
		if (s->has_lateness) json_num(f, s->p99_ms); else fputs("null", f);
		fprintf(f, ",\"lost\":%llu}", (unsigned long long)stream_lost(s));
		n++;
	}
	fprintf(f, "],\"rcvbuf\":%d,\"rcvbufRequested\":%ld,\"rcvbufErrorsDelta\":", rcvbuf_got, opt.rcvbuf);
	if (rcvbuf_delta >= 0) fprintf(f, "%lld", rcvbuf_delta); else fputs("null", f);
	fprintf(f, ",\"base\":\"%s\",\"baseQuantile\":", opt.base_quantile > 0 ? "quantile" : "min");
	json_num(f, opt.base_quantile);
	fputs(",\"warmupSec\":", f);
	json_num(f, opt.warmup);
	fprintf(f, ",\"latenessSamples\":%.0f,\"latenessSampled\":%s,\"userTimestampPackets\":%llu",
		pool_total, samples_were_sampled ? "true" : "false", (unsigned long long)user_ts_packets);
	if (opt.per_stream) {
		fputs(",\"perStream\":[", f);
		for (int i = 0; i < opt.count; i++) {
			struct stream *s = &streams[i];
			fprintf(f, "%s{\"port\":%d,\"packets\":%llu,\"bytes\":%llu,\"lost\":%llu,\"duplicates\":%llu,"
				   "\"reordered\":%llu,\"nonRtp\":%llu,\"markers\":%llu,\"ssrcChanges\":%u,",
				i ? "," : "", s->port, (unsigned long long)s->packets, (unsigned long long)s->bytes,
				(unsigned long long)stream_lost(s), (unsigned long long)s->dups,
				(unsigned long long)s->reordered, (unsigned long long)s->nonrtp,
				(unsigned long long)s->markers, s->ssrc_changes);
			if (s->packets)
				fprintf(f, "\"ssrc\":%u,\"payloadType\":%d,\"sizeMin\":%u,\"sizeMax\":%u,", s->ssrc, s->pt, s->size_min, s->size_max);
			else
				fputs("\"ssrc\":null,\"payloadType\":null,\"sizeMin\":null,\"sizeMax\":null,", f);
			if (opt.verify_payload)
				fprintf(f, "\"payloadMismatches\":%llu,", (unsigned long long)s->mismatches);
			fputs("\"p99\":", f);
			if (s->has_lateness) json_num(f, s->p99_ms); else fputs("null", f);
			fputs(",\"max\":", f);
			if (s->has_lateness) json_num(f, s->lat_max_ms); else fputs("null", f);
			fputc('}', f);
		}
		fputc(']', f);
	}
	fputs("}\n", f);
	free(p99s);
	free(order);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	streams = calloc((size_t)opt.count, sizeof *streams);
	pool_hist = calloc(POOL_BINS + 1, sizeof *pool_hist);
	slots = malloc((size_t)BATCH * SLOT_BYTES);
	if (!streams || !pool_hist || !slots)
		die("out of memory");
	apply_clock_map();
	raise_fd_limit(opt.count);
	long per = opt.sample_budget / opt.count;
	sample_cap = (uint32_t)(per < opt.samples_per_stream ? per : opt.samples_per_stream);
	if (sample_cap < 16)
		sample_cap = 16;
	for (int i = 0; i < BATCH; i++) {
		iovs[i].iov_base = slots + (size_t)i * SLOT_BYTES;
		iovs[i].iov_len = SLOT_BYTES;
		msgs[i].msg_hdr.msg_iov = &iovs[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	/* Signals arrive through a signalfd so they cannot race the epoll wait. */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || ep < 0)
		die("signalfd/epoll: %s", strerror(errno));
	struct epoll_event sev = { .events = EPOLLIN, .data.u32 = (uint32_t)opt.count };
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev);
	if (opt.stop_on_stdin_eof) {
		struct epoll_event iev = { .events = EPOLLIN, .data.u32 = (uint32_t)opt.count + 1 };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &iev) < 0)
			die("--stop-on-stdin-eof needs stdin to be a pipe or socket (%s)", strerror(errno));
	}

	long long rcvbuf_errors_before = read_rcvbuf_errors();
	open_sockets(ep);
	int rcvbuf_got = 0;
	socklen_t rl = sizeof rcvbuf_got;
	getsockopt(streams[0].fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_got, &rl);
	fputs("READY\n", stderr);
	fflush(stderr);

	double start = mono_now(), first_packet = -1;
	int stop = 0;
	struct epoll_event evs[64];
	while (!stop) {
		double now = mono_now(), deadline = start + opt.max_seconds;
		if (opt.duration > 0 && first_packet >= 0 && first_packet + opt.duration < deadline)
			deadline = first_packet + opt.duration;
		if (now >= deadline)
			break;
		int timeout_ms = (int)ceil((deadline - now) * 1000);
		int n = epoll_wait(ep, evs, 64, timeout_ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			uint32_t id = evs[i].data.u32;
			if (id < (uint32_t)opt.count) {
				/* A few batches per socket per wakeup keeps busy ports from starving others. */
				if (drain(&streams[id], 4) > 0 && first_packet < 0)
					first_packet = mono_now();
			} else if (id == (uint32_t)opt.count) {
				stop = 1;
			} else {
				char buf[256];
				ssize_t r = read(0, buf, sizeof buf);
				if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
					stop = 1;
			}
		}
	}
	/* Whatever is already queued was sent before we were told to stop: count it. */
	for (int i = 0; i < opt.count; i++)
		while (drain(&streams[i], 64) > 0)
			;
	long long rcvbuf_errors_after = read_rcvbuf_errors();

	for (int i = 0; i < opt.count; i++) {
		close_seq_segment(&streams[i]);
		close_lateness_segment(&streams[i]);
	}
	const char *src = user_ts_packets == 0 ? "kernel" : "user";
	long long delta = rcvbuf_errors_before >= 0 && rcvbuf_errors_after >= 0 ? rcvbuf_errors_after - rcvbuf_errors_before : -1;
	FILE *out = stdout;
	if (opt.json_path && !(out = fopen(opt.json_path, "w")))
		die("cannot write %s: %s", opt.json_path, strerror(errno));
	write_report(out, src, rcvbuf_got, delta);
	if (fclose(out) != 0)
		die("writing the report failed: %s", strerror(errno));
	return 0;
}
