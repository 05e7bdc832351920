/* audio_container.c: see audio_container.h. */
#include "../core/util.h"
#include "audio_container.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* a file or a byte string, read by offset */
typedef struct src {
  int fd;
  const unsigned char *p;
  uint64_t size;
} src;

static int src_open(src *s, const char *path, const void *bytes, size_t nbytes) {
  memset(s, 0, sizeof *s);
  s->fd = -1;
  if (bytes) {
    s->p = bytes;
    s->size = nbytes;
    return 0;
  }
  char why[200];
  s->fd = oe_open_regular(path, &s->size, why, sizeof why); /* never blocks on a pipe */
  return s->fd < 0 ? -1 : 0;
}

static void src_close(src *s) {
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
}

/* 0: n bytes at off read into buf; -1: past the end or a read error */
static int src_read(const src *s, void *buf, size_t n, uint64_t off) {
  if (off > s->size || n > s->size - off) return -1;
  if (s->p) {
    memcpy(buf, s->p + off, n);
    return 0;
  }
  return oe_pread_full(s->fd, buf, n, off);
}

static uint32_t get32(const unsigned char *b, int big) {
  return big ? (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]
             : (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
}
static uint16_t get16(const unsigned char *b, int big) { return big ? (uint16_t)(b[0] << 8 | b[1]) : (uint16_t)(b[1] << 8 | b[0]); }
static uint64_t get64le(const unsigned char *b) { return (uint64_t)get32(b + 4, 0) << 32 | get32(b, 0); }

/* WAVE_FORMAT tags whose frames are one block each */
static int linear_tag(unsigned tag) { return tag == 1 || tag == 3 || tag == 6 || tag == 7; }

int oe_wav_data_chunk(const char *path, const void *bytes, size_t nbytes, oe_wav_data *d) {
  memset(d, 0, sizeof *d);
  src s;
  if (src_open(&s, path, bytes, nbytes) != 0) return 0;
  int found = 0;
  unsigned char h[40];
  if (src_read(&s, h, 12, 0) != 0 || memcmp(h + 8, "WAVE", 4) != 0) goto done;
  int big = memcmp(h, "RIFX", 4) == 0;
  int rf64 = memcmp(h, "RF64", 4) == 0 || memcmp(h, "BW64", 4) == 0;
  if (!big && !rf64 && memcmp(h, "RIFF", 4) != 0) goto done;
  uint64_t ds64_data = 0, off = 12;
  int have_ds64 = 0;
  for (int chunks = 0; chunks < 4096 && off <= s.size && s.size - off >= 8; chunks++) {
    if (src_read(&s, h, 8, off) != 0) break;
    uint32_t size = get32(h + 4, big);
    if (memcmp(h, "ds64", 4) == 0 && size >= 16 && src_read(&s, h, 16, off + 8) == 0) {
      ds64_data = get64le(h + 8);
      have_ds64 = 1;
    } else if (memcmp(h, "fmt ", 4) == 0 && size >= 16 && src_read(&s, h, size >= 40 ? 40 : 16, off + 8) == 0) {
      unsigned tag = get16(h, big);
      d->block_align = get16(h + 12, big);
      if (tag == 0xFFFE && size >= 40) tag = get16(h + 24, big); /* WAVE_FORMAT_EXTENSIBLE: the sub-format GUID */
      d->linear = linear_tag(tag);
    } else if (memcmp(h, "data", 4) == 0) {
      uint64_t announced = size;
      if (rf64 && size == 0xFFFFFFFFu && have_ds64) announced = ds64_data;
      /* sizes a writer leaves when it cannot seek back (a pipe): no definite length */
      if (announced == 0 || announced == 0xFFFFFFFFu || announced == 0x7FFFF000u || announced == UINT64_MAX) break;
      d->announced = announced;
      d->present = s.size - (off + 8);
      found = 1;
      break;
    }
    uint64_t next = off + 8 + (uint64_t)size + (size & 1u);
    if (next <= off) break;
    off = next;
  }
done:
  src_close(&s);
  return found;
}

/* 1 when a sub-chunk inside the LIST chunk at [start, end) runs past end */
static int list_overruns(const src *s, uint64_t start, uint64_t end, int big) {
  unsigned char h[8];
  uint64_t off = start + 4; /* after the list type ("INFO", "adtl", ...) */
  for (int n = 0; n < 65536 && off < end; n++) {
    if (end - off < 8) return 1;
    if (src_read(s, h, 8, off) != 0) return 0; /* the file ends first: libsndfile stops there */
    uint64_t next = off + 8 + (uint64_t)get32(h + 4, big);
    if (next > end) return 1;
    off = next + (next & 1u);
  }
  return 0;
}

int oe_wav_list_overrun(const char *path, const void *bytes, size_t nbytes) {
  src s;
  if (src_open(&s, path, bytes, nbytes) != 0) return 0;
  int overrun = 0;
  unsigned char h[12];
  if (src_read(&s, h, 12, 0) != 0 || memcmp(h + 8, "WAVE", 4) != 0) goto done;
  int big = memcmp(h, "RIFX", 4) == 0;
  if (!big && memcmp(h, "RIFF", 4) != 0) goto done;
  uint64_t off = 12;
  for (int chunks = 0; chunks < 4096 && off <= s.size && s.size - off >= 8; chunks++) {
    if (src_read(&s, h, 8, off) != 0) break;
    uint32_t size = get32(h + 4, big);
    uint64_t end = off + 8 + (uint64_t)size;
    if (memcmp(h, "LIST", 4) == 0 && size >= 4 && list_overruns(&s, off + 8, end, big)) {
      overrun = 1;
      break;
    }
    off = end + (size & 1u);
  }
done:
  src_close(&s);
  return overrun;
}

/* Ogg's CRC-32: polynomial 0x04C11DB7, MSB first, initial value 0, no final xor,
 * over the page with its CRC field read as zero */
static uint32_t ogg_crc(const unsigned char *p, size_t n) {
  uint32_t c = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char b = (i >= 22 && i < 26) ? 0 : p[i];
    c ^= (uint32_t)b << 24;
    for (int k = 0; k < 8; k++) c = (c & 0x80000000u) ? (c << 1) ^ 0x04C11DB7u : c << 1;
  }
  return c;
}

#define OGG_MAX_PAGE (27 + 255 + 255 * 255)

int oe_ogg_missing_eos(const char *path, const void *bytes, size_t nbytes) {
  src s;
  if (src_open(&s, path, bytes, nbytes) != 0) return 0;
  /* a cut page is at most one page long, so the last complete page starts within
   * two page lengths of the end */
  uint64_t win = s.size < 2 * (uint64_t)OGG_MAX_PAGE ? s.size : 2 * (uint64_t)OGG_MAX_PAGE;
  int missing = 0;
  unsigned char *buf = win ? malloc((size_t)win) : NULL;
  if (!buf || src_read(&s, buf, (size_t)win, s.size - win) != 0) goto done;
  for (size_t i = win >= 27 ? (size_t)win - 27 + 1 : 0; i-- > 0;) {
    const unsigned char *pg = buf + i;
    if (memcmp(pg, "OggS", 4) != 0 || pg[4] != 0) continue;
    size_t nseg = pg[26], len = 27 + nseg;
    if (len > win - i) continue;
    for (size_t k = 0; k < nseg; k++) len += pg[27 + k];
    if (len > win - i) continue;
    if (ogg_crc(pg, len) != get32(pg + 22, 0)) continue;
    missing = !(pg[5] & 0x04);
    break;
  }
done:
  free(buf);
  src_close(&s);
  return missing;
}
