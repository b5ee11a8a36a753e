/*
 * rtpsend: RTP load generator for 127.0.0.0/8 only.
 *
 * Sends N streams (one per destination port) round-robin: global slot k goes
 * to stream k % N as that stream's packet j = k / N. Paced mode schedules slot
 * k at k / rate seconds (piecewise with --ramp) and, every tick (1 ms), sends
 * every slot that is due with sendmmsg. --max sends as fast as the kernel
 * takes it (the "plain C send loop" baseline). RTP timestamps follow the
 * schedule: ts = ts-start + round(sched_k * clock), so a receiver can measure
 * lateness against it. In --max mode they carry the time the batch was built
 * instead, so the receiver's lateness is then the queueing delay.
 *
 * Payload byte k (after the 12-byte header) of the packet (ssrc, seq):
 *   ((ssrc >> (8 * (k % 4))) + 7 * seq + k) mod 256
 * (drive.mjs expectedPayload() computes the same.)
 *
 * Fault injection, per stream, on the packet index j (from 0): with K >= 2,
 *   --skip-every K     slots with (j + 1) % K == 0 are not sent (their
 *                      sequence number is consumed: the receiver sees a loss)
 *   --dup-every K      such packets are sent twice, back to back
 *   --reorder-every K  such packets are held and sent right after the
 *                      stream's next sent packet (after its duplicate, if any)
 * A skipped slot is neither duplicated nor held. A packet still held when the
 * stream ends is sent last, in order, and not counted as reordered.
 *
 * Build: cc -O2 -Wall -Wextra -o rtpsend rtpsend.c -lm
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256
/* One slot can emit up to 4 datagrams: itself, its duplicate, a released held packet and its duplicate. */
#define MSGS_PER_SLOT 4
#define MSG_CAP (MAX_BATCH + MSGS_PER_SLOT)
#define MAX_STEPS 4096

struct options {
	struct in_addr host;
	int port_base, count, step;
	double pps, clock, duration, max_seconds, tick_us;
	long size, pt, batch;
	long long packets;
	int max_mode, connected, nonblock, ramp;
	double ramp_start, ramp_step, ramp_every;
	uint32_t ssrc_base, ts_start;
	uint16_t seq_start;
	long skip_every, dup_every, reorder_every, marker_every;
	int have_duration;
};

struct dest {
	struct sockaddr_in addr;
	int fd;
	uint32_t ssrc;
	uint64_t next_j;
	int held, held_dup;
	uint8_t *held_buf;
};

struct step_report {
	double rate, start, end;
	uint64_t packets;
	int started;
};

static struct options opt;
static struct dest *dests;
static int shared_fd = -1;
static volatile sig_atomic_t stop_requested;

static struct mmsghdr msgs[MSG_CAP];
static struct iovec iovs[MSG_CAP];
static int msg_dest[MSG_CAP];
static int msg_step[MSG_CAP];
static uint8_t *bufs;
static int nmsgs;

static uint64_t sent_packets, sent_bytes, skipped, duplicated, reordered, slots_done;
static uint64_t err_eagain, err_enobufs, err_other;
static double send_lag_max;
static struct step_report steps[MAX_STEPS];
static int nsteps;

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("rtpsend: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
	fputs("usage: rtpsend --port-base P [--host 127.0.0.1] [--count N] [--step S]\n"
	      "  (--pps R | --ramp --ramp-start R0 --ramp-step dR --ramp-every SEC | --max)\n"
	      "  [--duration SEC] [--packets K] [--max-seconds SEC] [--size BYTES] [--pt PT]\n"
	      "  [--clock HZ] [--ssrc-base X] [--seq-start S] [--ts-start T] [--connected]\n"
	      "  [--nonblock] [--batch B] [--tick-us US] [--marker-every K]\n"
	      "  [--skip-every K] [--dup-every K] [--reorder-every K]\n", stderr);
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	inet_pton(AF_INET, "127.0.0.1", &opt.host);
	opt.port_base = -1;
	opt.count = 1;
	opt.step = 2;
	opt.clock = 48000;
	opt.size = 172;
	opt.pt = 96;
	opt.batch = 64;
	opt.tick_us = 1000;
	opt.max_seconds = 600;
	opt.ssrc_base = 0x0ffca570;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define VAL() (v ? (i++, v) : (die("%s needs a value", a), ""))
		if (!strcmp(a, "--host")) {
			const char *h = VAL();
			if (inet_pton(AF_INET, h, &opt.host) != 1)
				die("--host must be an IPv4 address, got '%s'", h);
			/* A load generator must never leave the machine. */
			if ((ntohl(opt.host.s_addr) >> 24) != 127)
				die("--host %s is outside 127.0.0.0/8; refusing", h);
		} else if (!strcmp(a, "--port-base")) opt.port_base = (int)parse_num(a, VAL(), 1, 65535);
		else if (!strcmp(a, "--count")) opt.count = (int)parse_num(a, VAL(), 1, 65535);
		else if (!strcmp(a, "--step")) opt.step = (int)parse_num(a, VAL(), 1, 65535);
		else if (!strcmp(a, "--pps")) opt.pps = parse_num(a, VAL(), 0.001, 1e8);
		else if (!strcmp(a, "--size")) opt.size = (long)parse_num(a, VAL(), 12, 65507);
		else if (!strcmp(a, "--pt")) opt.pt = (long)parse_num(a, VAL(), 0, 127);
		else if (!strcmp(a, "--clock")) opt.clock = parse_num(a, VAL(), 1, 1e9);
		else if (!strcmp(a, "--duration")) { opt.duration = parse_num(a, VAL(), 0.001, 1e7); opt.have_duration = 1; }
		else if (!strcmp(a, "--packets")) opt.packets = (long long)parse_num(a, VAL(), 1, 1e15);
		else if (!strcmp(a, "--max-seconds")) opt.max_seconds = parse_num(a, VAL(), 0.001, 1e7);
		else if (!strcmp(a, "--ramp")) opt.ramp = 1;
		else if (!strcmp(a, "--ramp-start")) opt.ramp_start = parse_num(a, VAL(), 0.001, 1e8);
		else if (!strcmp(a, "--ramp-step")) opt.ramp_step = parse_num(a, VAL(), -1e8, 1e8);
		else if (!strcmp(a, "--ramp-every")) opt.ramp_every = parse_num(a, VAL(), 0.001, 1e7);
		else if (!strcmp(a, "--ssrc-base")) opt.ssrc_base = (uint32_t)parse_num(a, VAL(), 0, 4294967295.0);
		else if (!strcmp(a, "--seq-start")) opt.seq_start = (uint16_t)parse_num(a, VAL(), 0, 65535);
		else if (!strcmp(a, "--ts-start")) opt.ts_start = (uint32_t)parse_num(a, VAL(), 0, 4294967295.0);
		else if (!strcmp(a, "--max")) opt.max_mode = 1;
		else if (!strcmp(a, "--connected")) opt.connected = 1;
		else if (!strcmp(a, "--nonblock")) opt.nonblock = 1;
		else if (!strcmp(a, "--batch")) opt.batch = (long)parse_num(a, VAL(), 1, MAX_BATCH);
		else if (!strcmp(a, "--tick-us")) opt.tick_us = parse_num(a, VAL(), 10, 1e6);
		else if (!strcmp(a, "--marker-every")) opt.marker_every = (long)parse_num(a, VAL(), 1, 1e9);
		else if (!strcmp(a, "--skip-every")) opt.skip_every = (long)parse_num(a, VAL(), 2, 1e9);
		else if (!strcmp(a, "--dup-every")) opt.dup_every = (long)parse_num(a, VAL(), 2, 1e9);
		else if (!strcmp(a, "--reorder-every")) opt.reorder_every = (long)parse_num(a, VAL(), 2, 1e9);
		else if (!strcmp(a, "--help") || !strcmp(a, "-h")) usage();
		else die("unknown argument '%s'", a);
#undef VAL
	}
	if (opt.port_base < 0)
		die("--port-base is required");
	if ((long)opt.port_base + (long)(opt.count - 1) * opt.step > 65535)
		die("--port-base %d + (--count %d - 1) * --step %d exceeds 65535", opt.port_base, opt.count, opt.step);
	if (opt.max_mode && (opt.ramp || opt.pps > 0))
		die("--max sends unpaced: it excludes --pps and --ramp");
	if (opt.ramp && !(opt.ramp_start > 0 && opt.ramp_every > 0))
		die("--ramp needs --ramp-start R0 and --ramp-every SEC (and usually --ramp-step dR)");
	if (!opt.ramp && !opt.max_mode && !(opt.pps > 0))
		die("one of --pps R, --ramp or --max is required");
	if (!opt.have_duration && !opt.packets)
		die("one of --duration SEC or --packets K is required: the run must be bounded");
	if (opt.have_duration && opt.duration > opt.max_seconds)
		die("--duration %g exceeds --max-seconds %g", opt.duration, opt.max_seconds);
}

/* Payload formula shared with rtprecv --verify-payload and drive.mjs expectedPayload(). */
static void fill_payload(uint8_t *dst, size_t len, uint32_t ssrc, uint16_t seq)
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

static void build_packet(uint8_t *p, const struct dest *d, uint64_t j, double sched)
{
	uint16_t seq = (uint16_t)(opt.seq_start + j);
	uint32_t ts = opt.ts_start + (uint32_t)(uint64_t)llround(sched * opt.clock);
	int marker = j == 0 || (opt.marker_every > 0 && j % (uint64_t)opt.marker_every == 0);
	p[0] = 0x80;
	p[1] = (uint8_t)((marker ? 0x80 : 0) | opt.pt);
	p[2] = (uint8_t)(seq >> 8);
	p[3] = (uint8_t)seq;
	p[4] = (uint8_t)(ts >> 24);
	p[5] = (uint8_t)(ts >> 16);
	p[6] = (uint8_t)(ts >> 8);
	p[7] = (uint8_t)ts;
	p[8] = (uint8_t)(d->ssrc >> 24);
	p[9] = (uint8_t)(d->ssrc >> 16);
	p[10] = (uint8_t)(d->ssrc >> 8);
	p[11] = (uint8_t)d->ssrc;
	fill_payload(p + 12, (size_t)opt.size - 12, d->ssrc, seq);
}

static uint8_t *queue_msg(int dest, int step)
{
	int i = nmsgs++;
	msg_dest[i] = dest;
	msg_step[i] = step;
	msgs[i].msg_hdr.msg_name = opt.connected ? NULL : &dests[dest].addr;
	msgs[i].msg_hdr.msg_namelen = opt.connected ? 0 : sizeof dests[dest].addr;
	return bufs + (size_t)i * (size_t)opt.size;
}

static void count_error(int err)
{
	if (err == EAGAIN || err == EWOULDBLOCK)
		err_eagain++;
	else if (err == ENOBUFS)
		err_enobufs++;
	else
		err_other++;
}

/* Sends msgs[from, to) on fd; a failing message is counted and dropped, never retried. */
static void send_run(int fd, int from, int to, double now)
{
	int i = from;
	while (i < to) {
		int r = sendmmsg(fd, msgs + i, (unsigned)(to - i), opt.nonblock ? MSG_DONTWAIT : 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			count_error(errno);
			i++;
			continue;
		}
		for (int m = i; m < i + r; m++) {
			sent_packets++;
			sent_bytes += (uint64_t)opt.size;
			struct step_report *s = &steps[msg_step[m]];
			s->packets++;
			s->end = now;
		}
		i += r;
	}
}

static void flush(void)
{
	if (!nmsgs)
		return;
	double now = mono_now();
	if (!opt.connected) {
		send_run(shared_fd, 0, nmsgs, now);
	} else {
		/* Connected sockets: one sendmmsg per run of messages to the same destination. */
		int from = 0;
		for (int i = 1; i <= nmsgs; i++)
			if (i == nmsgs || msg_dest[i] != msg_dest[from]) {
				send_run(dests[msg_dest[from]].fd, from, i, now);
				from = i;
			}
	}
	nmsgs = 0;
}

static void queue_held(int di, int step)
{
	struct dest *d = &dests[di];
	for (int c = 0; c < 1 + d->held_dup; c++)
		memcpy(queue_msg(di, step), d->held_buf, (size_t)opt.size);
	d->held = 0;
}

static int every(long k, uint64_t j)
{
	return k > 0 && (j + 1) % (uint64_t)k == 0;
}

/* Generates global slot k (stream k % N, packet j) into the batch. */
static void generate_slot(uint64_t k, double sched, int step, int last_of_stream)
{
	int di = (int)(k % (uint64_t)opt.count);
	struct dest *d = &dests[di];
	uint64_t j = d->next_j++;
	slots_done++;
	if (every(opt.skip_every, j)) {
		skipped++;
	} else {
		int dup = every(opt.dup_every, j);
		if (dup)
			duplicated++;
		if (every(opt.reorder_every, j) && !last_of_stream) {
			if (d->held) /* two held in a row: release the older one now, in order */
				queue_held(di, step);
			build_packet(d->held_buf, d, j, sched);
			d->held = 1;
			d->held_dup = dup;
			return;
		}
		uint8_t *p = queue_msg(di, step);
		build_packet(p, d, j, sched);
		if (dup)
			memcpy(queue_msg(di, step), p, (size_t)opt.size);
		if (d->held) {
			reordered++;
			queue_held(di, step);
		}
	}
	if (last_of_stream && d->held)
		queue_held(di, step);
}

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void open_sockets(void)
{
	dests = calloc((size_t)opt.count, sizeof *dests);
	if (!dests)
		die("out of memory");
	if (!opt.connected) {
		shared_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (shared_fd < 0)
			die("socket: %s", strerror(errno));
	}
	for (int i = 0; i < opt.count; i++) {
		struct dest *d = &dests[i];
		d->addr.sin_family = AF_INET;
		d->addr.sin_addr = opt.host;
		d->addr.sin_port = htons((uint16_t)(opt.port_base + i * opt.step));
		d->ssrc = opt.ssrc_base + (uint32_t)i;
		d->fd = shared_fd;
		if (opt.reorder_every && !(d->held_buf = malloc((size_t)opt.size)))
			die("out of memory");
		if (opt.connected) {
			d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			if (d->fd < 0)
				die("socket: %s (one socket per destination with --connected)", strerror(errno));
			if (connect(d->fd, (struct sockaddr *)&d->addr, sizeof d->addr) < 0)
				die("connect port %d: %s", opt.port_base + i * opt.step, strerror(errno));
		}
	}
}

/* Schedule state: slot k of step m is at step_t0 + (k - step_k0) / rate. */
static double sched_rate, step_t0;
static uint64_t step_k0;
static int step_index;

static void schedule_init(void)
{
	sched_rate = opt.ramp ? opt.ramp_start : opt.pps;
	step_t0 = 0;
	step_k0 = 0;
	step_index = 0;
	steps[0].rate = sched_rate;
	nsteps = 1;
}

/* Scheduled time of slot k (k only grows); returns -1 when the ramp reaches a rate <= 0. */
static double schedule_of(uint64_t k)
{
	double t = step_t0 + (double)(k - step_k0) / sched_rate;
	while (opt.ramp && t >= step_t0 + opt.ramp_every) {
		step_t0 += opt.ramp_every;
		step_k0 = k;
		sched_rate = opt.ramp_start + (step_index + 1) * opt.ramp_step;
		if (!(sched_rate > 0) || nsteps >= MAX_STEPS)
			return -1;
		step_index++;
		steps[nsteps].rate = sched_rate;
		nsteps++;
		t = step_t0;
	}
	return t;
}

static void sleep_until(double t)
{
	struct timespec ts;
	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop_requested)
		;
}

static void json_num(double v)
{
	if (isfinite(v))
		printf("%.6g", v);
	else
		fputs("null", stdout);
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(opt.connected ? opt.count : 1);
	open_sockets();
	bufs = malloc((size_t)MSG_CAP * (size_t)opt.size);
	if (!bufs)
		die("out of memory");
	for (int i = 0; i < MSG_CAP; i++) {
		iovs[i].iov_base = bufs + (size_t)i * (size_t)opt.size;
		iovs[i].iov_len = (size_t)opt.size;
		msgs[i].msg_hdr.msg_iov = &iovs[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	uint64_t slot_cap = opt.packets > 0 ? (uint64_t)opt.packets : UINT64_MAX;
	double duration = opt.have_duration ? opt.duration : INFINITY;
	double tick = opt.tick_us / 1e6;
	int truncated = 0;
	schedule_init();
	double start = mono_now();
	uint64_t k = 0;
	double next_sched = opt.max_mode ? 0 : schedule_of(0);
	int done = next_sched < 0 || next_sched >= duration;

	while (!done && !stop_requested) {
		double now = mono_now() - start;
		if (now >= opt.max_seconds) {
			truncated = 1;
			break;
		}
		if (opt.max_mode && now >= duration)
			break;
		while (!done && nmsgs < (int)opt.batch && (opt.max_mode || next_sched <= now)) {
			int slot_step = step_index;
			struct step_report *s = &steps[slot_step];
			if (!s->started) {
				s->started = 1;
				s->start = mono_now();
				s->end = s->start;
			}
			if (!opt.max_mode && now - next_sched > send_lag_max)
				send_lag_max = now - next_sched;
			/* The last slot of a stream is the last one before the cap (or the schedule end). */
			uint64_t kn = k + 1;
			double after = opt.max_mode ? 0 : schedule_of(kn);
			/* Unpaced: there is no schedule, so timestamps carry the send time. */
			if (opt.max_mode)
				next_sched = now;
			int end_here = kn >= slot_cap || after < 0 || (!opt.max_mode && after >= duration);
			int last_of_stream = end_here ? 1 : kn + (uint64_t)opt.count > slot_cap;
			generate_slot(k, next_sched, slot_step, last_of_stream);
			k = kn;
			next_sched = after;
			if (end_here)
				done = 1;
		}
		flush();
		if (done || opt.max_mode)
			continue;
		/* Wake on the tick that covers the next due slot: pacing in 1 ms batches. */
		double wake = ceil(next_sched / tick) * tick;
		if (wake > opt.max_seconds)
			wake = opt.max_seconds;
		if (wake > mono_now() - start)
			sleep_until(start + wake);
	}
	/* In max mode or when stopped early, streams may still hold a packet. */
	for (int i = 0; i < opt.count; i++)
		if (dests[i].held) {
			if (nmsgs > MSG_CAP - 2)
				flush();
			queue_held(i, step_index);
		}
	flush();
	/* A paced run lasts until the schedule ends, so rates come out right. */
	if (!opt.max_mode && !stop_requested && !truncated) {
		double end_at = next_sched < 0 ? step_t0 : next_sched;
		if (end_at > duration)
			end_at = duration;
		if (end_at > opt.max_seconds)
			end_at = opt.max_seconds;
		sleep_until(start + end_at);
	}
	double end = mono_now();
	double dur = end - start;

	printf("{\"mode\":\"%s\",\"connected\":%s,\"streams\":%d,\"slots\":%llu,\"packets\":%llu,\"bytes\":%llu",
	       opt.max_mode ? "max" : opt.ramp ? "ramp" : "paced", opt.connected ? "true" : "false", opt.count,
	       (unsigned long long)slots_done, (unsigned long long)sent_packets, (unsigned long long)sent_bytes);
	printf(",\"skipped\":%llu,\"duplicated\":%llu,\"reordered\":%llu", (unsigned long long)skipped,
	       (unsigned long long)duplicated, (unsigned long long)reordered);
	printf(",\"sendErrors\":%llu,\"eagain\":%llu,\"enobufs\":%llu,\"otherErrors\":%llu",
	       (unsigned long long)(err_eagain + err_enobufs + err_other), (unsigned long long)err_eagain,
	       (unsigned long long)err_enobufs, (unsigned long long)err_other);
	fputs(",\"durationSec\":", stdout);
	json_num(dur);
	fputs(",\"achievedPps\":", stdout);
	json_num(dur > 0 ? (double)sent_packets / dur : 0);
	fputs(",\"targetPps\":", stdout);
	if (!opt.ramp && opt.pps > 0) json_num(opt.pps); else fputs("null", stdout);
	fputs(",\"sendLagMaxMs\":", stdout);
	if (opt.max_mode) fputs("null", stdout); else json_num(send_lag_max * 1000);
	printf(",\"truncated\":%s,\"stopped\":%s,\"size\":%ld,\"payloadType\":%ld,\"clock\":", truncated ? "true" : "false",
	       stop_requested ? "true" : "false", opt.size, opt.pt);
	json_num(opt.clock);
	printf(",\"ssrcBase\":%u,\"seqStart\":%u,\"tsStart\":%u", opt.ssrc_base, opt.seq_start, opt.ts_start);
	fputs(",\"ramp\":", stdout);
	if (opt.ramp) {
		putchar('[');
		for (int i = 0; i < nsteps; i++) {
			struct step_report *s = &steps[i];
			if (!s->started) /* scheduled at or after the end */
				continue;
			/* A step runs from its first send to the next step's first send (or the end). */
			double s_end = i + 1 < nsteps && steps[i + 1].started ? steps[i + 1].start : end;
			double span = s->started ? s_end - s->start : 0;
			printf("%s{\"rate\":", i ? "," : "");
			json_num(s->rate);
			printf(",\"packets\":%llu,\"durationSec\":", (unsigned long long)s->packets);
			json_num(span);
			fputs(",\"achievedPps\":", stdout);
			json_num(span > 0 ? (double)s->packets / span : 0);
			putchar('}');
		}
		putchar(']');
	} else {
		fputs("null", stdout);
	}
	puts("}");
	return fflush(stdout) == 0 ? 0 : 1;
}
