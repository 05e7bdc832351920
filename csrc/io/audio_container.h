/* audio_container.h: container-level truncation checks that libsndfile does not
 * report. libsndfile quietly shortens a WAV whose data chunk runs past the end of
 * the file, and reads an Ogg stream that stops without its end-of-stream page as
 * if it were complete; these checks read the few header bytes that say so.
 * Every size read from the file is checked against the file's size first. */
#ifndef OE_AUDIO_CONTAINER_H
#define OE_AUDIO_CONTAINER_H
#include <stddef.h>
#include <stdint.h>

/* A WAV (RIFF, RIFX, RF64 or BW64 with WAVE) and its data chunk. */
typedef struct oe_wav_data {
  uint64_t announced; /* bytes the data chunk header announces */
  uint64_t present;   /* bytes of the file from the data chunk's start to the end of the file */
  int block_align;    /* fmt chunk's nBlockAlign (bytes per frame for PCM), 0 when absent */
  int linear;         /* 1: PCM, IEEE float, A-law or mu-law (one block per frame) */
} oe_wav_data;

/* 1: a WAV whose data chunk announces a definite size (filled into d);
 * 0: not a WAV, no data chunk found, or a streaming placeholder size
 *    (0, 0xFFFFFFFF, sox's 0x7FFFF000: the writer could not seek back).
 * bytes != NULL reads from memory, else from path. */
int oe_wav_data_chunk(const char *path, const void *bytes, size_t nbytes, oe_wav_data *d);

/* 1: a RIFF/RIFX WAVE file with a LIST chunk whose sub-chunks announce more bytes
 *    than the LIST chunk holds. libsndfile 1.2.0's sf_open never returns on some of
 *    these (libsndfile#1118: a LIST/INFO sub-chunk of size 0xFFFFFFFF); FFmpeg reads
 *    them, skipping the bad sub-chunk, so the caller sends them there instead.
 * 0: anything else. bytes != NULL reads from memory, else from path. */
int oe_wav_list_overrun(const char *path, const void *bytes, size_t nbytes);

/* 1: an Ogg file whose last complete page (capture pattern, version 0, CRC valid)
 *    lacks the end-of-stream flag: the stream was cut;
 * 0: ends with an end-of-stream page, or no complete page was found in the tail. */
int oe_ogg_missing_eos(const char *path, const void *bytes, size_t nbytes);
#endif
