/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bench's randomness: seeded RNG, Poisson gaps, the device mix (parse, load, draw) and
 * the per-chunk impairment. No network, no allocation after parsing.
 */
#include "bench/bench.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
bench_rng_seed(struct bench_rng *r, uint64_t seed)
{
	r->s = seed ^ 0x6A09E667F3BCC909ull;
}

uint64_t
bench_rng_next(struct bench_rng *r)
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

double
bench_rng_unit(struct bench_rng *r)
{
	return (double)(bench_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t
bench_rng_range(struct bench_rng *r, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + bench_rng_next(r) % (hi - lo + 1);
}

uint64_t
bench_poisson_gap_ns(struct bench_rng *r, double rate)
{
	/* 1 - u is in (0, 1]: log never sees 0. */
	return (uint64_t)(-log(1.0 - bench_rng_unit(r)) * 1e9 / rate);
}

/* ---- mix ---- */

static const char *const bench_mix_names[BENCH_MIX__COUNT] = { "split", "dtype", "uplink", "deadline" };

void
bench_mix_default(struct bench_mix *m)
{
	memset(m, 0, sizeof(*m));
	(void)bench_mix_parse(m, BENCH_MIX_DEFAULT, NULL);
}

static int
bench_mix_dtype_value(const char *s, size_t n, uint64_t *v)
{
	static const char *const names[PROTO_DT__COUNT] = { NULL, "f32", "f16", "s8", "u8" };

	for (unsigned d = PROTO_DT_F32; d < PROTO_DT__COUNT; d++)
		if (strlen(names[d]) == n && strncasecmp(s, names[d], n) == 0) {
			*v = d;
			return 0;
		}
	return -EINVAL;
}

/* A number with an optional unit of the key, into the key's base unit (kbps, us). */
static int
bench_mix_number(enum bench_mix_key k, const char *s, size_t n, uint64_t *v)
{
	char buf[64], *end;
	double x, mul = 1;

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = 0;
	if (k == BENCH_MIX_DTYPE)
		return bench_mix_dtype_value(buf, n, v);
	errno = 0;
	x = strtod(buf, &end);
	if (end == buf || errno != 0 || !(x >= 0) || isinf(x))
		return -EINVAL;
	if (k == BENCH_MIX_UPLINK) {
		if (strcasecmp(end, "kbps") == 0 || *end == 0)
			mul = 1;
		else if (strcasecmp(end, "mbps") == 0)
			mul = 1e3;
		else if (strcasecmp(end, "gbps") == 0)
			mul = 1e6;
		else
			return -EINVAL;
	} else if (k == BENCH_MIX_DEADLINE) {
		if (strcasecmp(end, "ms") == 0 || *end == 0)
			mul = 1e3;
		else if (strcasecmp(end, "us") == 0)
			mul = 1;
		else if (strcasecmp(end, "s") == 0)
			mul = 1e6;
		else
			return -EINVAL;
	} else if (*end != 0 || x != floor(x) || x > 63) {
		return -EINVAL;	/* a split row: a small integer */
	}
	x *= mul;
	if (x > UINT32_MAX)
		return -EINVAL;
	*v = (uint64_t)llround(x);
	return 0;
}

/* One "VALUE[-HI][:WEIGHT]" item of key k. */
static int
bench_mix_item_parse(enum bench_mix_key k, const char *s, size_t n, struct bench_mix_item *it,
		  struct tg_err *err)
{
	const char *colon = memchr(s, ':', n), *dash;
	size_t vn = colon ? (size_t)(colon - s) : n;
	char wbuf[32], *end;

	it->weight = 1;
	if (colon != NULL) {
		size_t wn = n - vn - 1;

		if (wn == 0 || wn >= sizeof(wbuf))
			return tg_err_set(err, -EINVAL, "%s: item '%.*s': bad weight",
					  bench_mix_names[k], (int)n, s);
		memcpy(wbuf, colon + 1, wn);
		wbuf[wn] = 0;
		it->weight = strtod(wbuf, &end);
		if (*end != 0 || !(it->weight > 0) || isinf(it->weight))
			return tg_err_set(err, -EINVAL,
					  "%s: item '%.*s': weight must be a positive number",
					  bench_mix_names[k], (int)n, s);
	}
	dash = vn > 1 ? memchr(s + 1, '-', vn - 1) : NULL;
	if (dash != NULL) {
		if (k == BENCH_MIX_SPLIT || k == BENCH_MIX_DTYPE)
			return tg_err_set(err, -EINVAL, "%s: item '%.*s': ranges are for uplink "
					  "and deadline only", bench_mix_names[k], (int)n, s);
		const char *hs = dash + 1, *unit;
		size_t ln = (size_t)(dash - s), hn = vn - ln - 1;
		char lo[64];

		/* "1-2mbps": a unit on the high end only is the low end's too. */
		for (unit = hs + hn; unit > hs && isalpha((unsigned char)unit[-1]); unit--)
			;
		if (ln + (size_t)(hs + hn - unit) >= sizeof(lo))
			goto bad_value;
		memcpy(lo, s, ln);
		if (!isalpha((unsigned char)s[ln - 1])) {
			memcpy(lo + ln, unit, (size_t)(hs + hn - unit));
			ln += (size_t)(hs + hn - unit);
		}
		if (bench_mix_number(k, lo, ln, &it->lo) < 0 || bench_mix_number(k, hs, hn, &it->hi) < 0)
			goto bad_value;
		if (it->hi < it->lo)
			return tg_err_set(err, -EINVAL, "%s: range '%.*s' runs backwards",
					  bench_mix_names[k], (int)vn, s);
		return 0;
	}
	if (bench_mix_number(k, s, vn, &it->lo) < 0)
		goto bad_value;
	it->hi = it->lo;
	return 0;

bad_value:
	return tg_err_set(err, -EINVAL, "%s: '%.*s' is not %s", bench_mix_names[k], (int)vn, s,
			  k == BENCH_MIX_SPLIT ? "a split row 0..63" :
			  k == BENCH_MIX_DTYPE ? "f32, f16, s8 or u8" :
			  k == BENCH_MIX_UPLINK ? "a rate (e.g. 20000, 20000kbps, 20mbps)" :
			  "a time (e.g. 100, 100ms, 500us, 1s)");
}

static void
bench_trim(const char **s, size_t *n)
{
	while (*n > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && isspace((unsigned char)(*s)[*n - 1]))
		(*n)--;
}

/* "key=items" */
static int
bench_mix_pair(struct bench_mix *m, const char *s, size_t n, struct tg_err *err)
{
	const char *eq = memchr(s, '=', n), *p, *end = s + n;
	size_t kn;
	unsigned k;
	struct bench_mix_item items[BENCH_MIX_MAX_ITEMS];
	unsigned n_items = 0;

	if (eq == NULL)
		return tg_err_set(err, -EINVAL, "'%.*s': expected key=value", (int)n, s);
	kn = (size_t)(eq - s);
	bench_trim(&s, &kn);
	for (k = 0; k < BENCH_MIX__COUNT; k++)
		if (strlen(bench_mix_names[k]) == kn && strncasecmp(s, bench_mix_names[k], kn) == 0)
			break;
	if (k == BENCH_MIX__COUNT)
		return tg_err_set(err, -EINVAL, "unknown key '%.*s' (split, dtype, uplink, "
				  "deadline)", (int)kn, s);
	for (p = eq + 1; p <= end;) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		const char *ie = c ? c : end;
		const char *is = p;
		size_t in = (size_t)(ie - p);
		int rc;

		bench_trim(&is, &in);
		if (in == 0)
			return tg_err_set(err, -EINVAL, "%s: empty item", bench_mix_names[k]);
		if (n_items == BENCH_MIX_MAX_ITEMS)
			return tg_err_set(err, -EINVAL, "%s: more than %u items", bench_mix_names[k],
					  BENCH_MIX_MAX_ITEMS);
		rc = bench_mix_item_parse((enum bench_mix_key)k, is, in, &items[n_items], err);
		if (rc < 0)
			return rc;
		n_items++;
		p = ie + 1;
	}
	memset(m->key[k].item, 0, sizeof(m->key[k].item));
	m->key[k].n = n_items;
	memcpy(m->key[k].item, items, n_items * sizeof(items[0]));
	return 0;
}

int
bench_mix_parse(struct bench_mix *m, const char *spec, struct tg_err *err)
{
	struct bench_mix tmp = *m;
	const char *p = spec, *end;

	if (spec == NULL)
		return tg_err_set(err, -EINVAL, "mix: empty");
	end = spec + strlen(spec);
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *pe = semi ? semi : end, *ps = p;
		size_t pn = (size_t)(pe - p);
		int rc;

		bench_trim(&ps, &pn);
		if (pn > 0) {
			rc = bench_mix_pair(&tmp, ps, pn, err);
			if (rc < 0)
				return rc;
		}
		p = pe + 1;
	}
	for (unsigned k = 0; k < BENCH_MIX__COUNT; k++)
		if (tmp.key[k].n == 0)
			return tg_err_set(err, -EINVAL, "mix: no value for %s", bench_mix_names[k]);
	*m = tmp;
	return 0;
}

int
bench_mix_load(struct bench_mix *m, const char *path, struct tg_err *err)
{
	struct bench_mix tmp = *m;
	uint8_t *buf;
	size_t len;
	unsigned line = 0;
	int rc;

	rc = tg_file_read(path, 1 << 20, &buf, &len, err);
	if (rc < 0)
		return tg_err_prefix(err, "mix file %s: ", path);
	for (size_t i = 0; i < len;) {
		size_t e = i;
		char text[1024];
		char *hash;

		while (e < len && buf[e] != '\n')
			e++;
		line++;
		if (e - i >= sizeof(text)) {
			rc = tg_err_set(err, -EINVAL, "%s:%u: line too long", path, line);
			goto out;
		}
		memcpy(text, buf + i, e - i);
		text[e - i] = 0;
		if (memchr(text, 0, e - i) != NULL) {
			rc = tg_err_set(err, -EINVAL, "%s:%u: NUL byte", path, line);
			goto out;
		}
		hash = strchr(text, '#');
		if (hash)
			*hash = 0;
		for (char *p = text, *semi; *p; p = semi + 1) {
			const char *s = p;
			size_t n;

			semi = strchr(p, ';');
			if (semi)
				*semi = 0;
			n = strlen(s);
			bench_trim(&s, &n);
			if (n > 0) {
				rc = bench_mix_pair(&tmp, s, n, err);
				if (rc < 0) {
					tg_err_prefix(err, "%s:%u: ", path, line);
					goto out;
				}
			}
			if (!semi)
				break;
		}
		i = e + 1;
	}
	for (unsigned k = 0; k < BENCH_MIX__COUNT; k++)
		if (tmp.key[k].n == 0) {
			rc = tg_err_set(err, -EINVAL, "%s: no value for %s", path, bench_mix_names[k]);
			goto out;
		}
	*m = tmp;
	rc = 0;
out:
	free(buf);
	return rc;
}

static const struct bench_mix_item *
bench_mix_pick(const struct bench_mix *m, enum bench_mix_key k, struct bench_rng *r)
{
	double total = 0, x;
	unsigned i;

	for (i = 0; i < m->key[k].n; i++)
		total += m->key[k].item[i].weight;
	x = bench_rng_unit(r) * total;
	for (i = 0; i + 1 < m->key[k].n; i++) {
		if (x < m->key[k].item[i].weight)
			break;
		x -= m->key[k].item[i].weight;
	}
	return &m->key[k].item[i];
}

void
bench_mix_draw(const struct bench_mix *m, struct bench_rng *r, struct bench_profile *out)
{
	const struct bench_mix_item *it;

	out->split = (uint8_t)bench_mix_pick(m, BENCH_MIX_SPLIT, r)->lo;
	out->dtype = (uint8_t)bench_mix_pick(m, BENCH_MIX_DTYPE, r)->lo;
	it = bench_mix_pick(m, BENCH_MIX_UPLINK, r);
	out->uplink_kbps = (uint32_t)bench_rng_range(r, it->lo, it->hi);
	it = bench_mix_pick(m, BENCH_MIX_DEADLINE, r);
	out->deadline_us = (uint32_t)bench_rng_range(r, it->lo, it->hi);
}

void
bench_mix_format(const struct bench_mix *m, char *buf, size_t len)
{
	static const char *const dt[PROTO_DT__COUNT] = { "raw", "f32", "f16", "s8", "u8" };
	size_t o = 0;

	buf[0] = 0;
	for (unsigned k = 0; k < BENCH_MIX__COUNT && o < len; k++) {
		o += (size_t)snprintf(buf + o, len - o, "%s%s=", k ? ";" : "", bench_mix_names[k]);
		for (unsigned i = 0; i < m->key[k].n && o < len; i++) {
			const struct bench_mix_item *it = &m->key[k].item[i];
			const char *unit = k == BENCH_MIX_UPLINK ? "kbps" : k == BENCH_MIX_DEADLINE ? "us" : "";

			if (i)
				o += (size_t)snprintf(buf + o, len - o, ",");
			if (o >= len)
				break;
			if (k == BENCH_MIX_DTYPE)
				o += (size_t)snprintf(buf + o, len - o, "%s",
						      dt[it->lo < PROTO_DT__COUNT ? it->lo : 0]);
			else if (it->lo == it->hi)
				o += (size_t)snprintf(buf + o, len - o, "%" PRIu64 "%s", it->lo, unit);
			else
				o += (size_t)snprintf(buf + o, len - o, "%" PRIu64 "-%" PRIu64 "%s",
						      it->lo, it->hi, unit);
			if (o < len && it->weight != 1)
				o += (size_t)snprintf(buf + o, len - o, ":%g", it->weight);
		}
	}
}

uint64_t
bench_mix_split_mask(const struct bench_mix *m)
{
	uint64_t mask = 0;

	for (unsigned i = 0; i < m->key[BENCH_MIX_SPLIT].n; i++)
		mask |= 1ull << m->key[BENCH_MIX_SPLIT].item[i].lo;
	return mask;
}

unsigned
bench_mix_dtype_mask(const struct bench_mix *m)
{
	unsigned mask = 0;

	for (unsigned i = 0; i < m->key[BENCH_MIX_DTYPE].n; i++)
		mask |= 1u << m->key[BENCH_MIX_DTYPE].item[i].lo;
	return mask;
}

uint32_t
bench_mix_max_deadline(const struct bench_mix *m)
{
	uint64_t mx = 0;

	for (unsigned i = 0; i < m->key[BENCH_MIX_DEADLINE].n; i++)
		if (m->key[BENCH_MIX_DEADLINE].item[i].hi > mx)
			mx = m->key[BENCH_MIX_DEADLINE].item[i].hi;
	return (uint32_t)mx;
}

/* ---- impairment ---- */

int
bench_impair_check(const struct bench_impair *im, struct tg_err *err)
{
	const double f[3] = { im->drop, im->dup, im->reorder };
	static const char *const name[3] = { "drop", "dup", "reorder" };

	for (int i = 0; i < 3; i++)
		if (!(f[i] >= 0 && f[i] < 1))
			return tg_err_set(err, -EINVAL, "--%s: %g is not a fraction in [0, 1)",
					  name[i], f[i]);
	if (f[0] + f[1] + f[2] > 1)
		return tg_err_set(err, -EINVAL, "--drop + --dup + --reorder exceed 1");
	if (!(im->corrupt >= 0 && im->corrupt < 1))
		return tg_err_set(err, -EINVAL, "--corrupt: %g is not a fraction in [0, 1)",
				  im->corrupt);
	return 0;
}

enum bench_fate
bench_impair_fate(const struct bench_impair *im, struct bench_rng *r)
{
	double u;

	if (im->drop == 0 && im->dup == 0 && im->reorder == 0)
		return BENCH_FATE_SEND;	/* no draw: an unimpaired run keeps its RNG sequence */
	u = bench_rng_unit(r);
	if (u < im->drop)
		return BENCH_FATE_DROP;
	if (u < im->drop + im->dup)
		return BENCH_FATE_DUP;
	if (u < im->drop + im->dup + im->reorder)
		return BENCH_FATE_REORDER;
	return BENCH_FATE_SEND;
}
