/* SPDX-License-Identifier: MIT */
/* Replays a fuzz target's corpus without libFuzzer: every file of every
 * directory (or file) named on the command line goes once through
 * LLVMFuzzerTestOneInput, in name order. The ordinary, ASan and valgrind
 * builds run the seed corpora this way (ctest fuzz_replay_<name>), so an
 * input that once crashed a target, kept in its corpus, is re-checked by
 * every build and not only by the fuzz stage. Exit status 1 when a
 * directory cannot be read or holds no input. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    perror(path);
    return -1;
  }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 4096;
      uint8_t *nb = realloc(buf, cap);
      if (nb == NULL) {
        free(buf);
        fclose(f);
        return -1;
      }
      buf = nb;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    if (got == 0)
      break;
    len += got;
  }
  int bad = ferror(f);
  fclose(f);
  if (!bad)
    LLVMFuzzerTestOneInput(buf, len);
  free(buf);
  return bad ? -1 : 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv) {
  size_t n = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      perror(argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (replay_file(argv[i]) != 0)
        return 1;
      n++;
      continue;
    }
    struct dirent **ents;
    int k = scandir(argv[i], &ents, NULL, by_name);
    if (k < 0) {
      perror(argv[i]);
      return 1;
    }
    for (int j = 0; j < k; j++) {
      char path[4096];
      int rc = 0;
      if (ents[j]->d_name[0] != '.') {
        snprintf(path, sizeof path, "%s/%s", argv[i], ents[j]->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
          rc = replay_file(path);
          n++;
        }
      }
      free(ents[j]);
      if (rc != 0) {
        while (++j < k)
          free(ents[j]);
        free(ents);
        return 1;
      }
    }
    free(ents);
  }
  printf("%zu inputs replayed\n", n);
  return n > 0 ? 0 : 1;
}
