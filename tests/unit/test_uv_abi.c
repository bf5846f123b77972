/* SPDX-License-Identifier: MIT */
/* Layouts that can grow (0.2): the caller-allocated smtpuv_reply and
 * smtpuv_header_field are written no further than the caller's size and
 * say how much was filled (struct_size); the per-recipient array of a send
 * result is read through smtpuv_send_result_recipient(), which steps by the
 * library's recipient_size (so a newer library's longer elements read
 * right). The version macros agree with the linked library. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpuv/client.h"
#include "support.h"

#define REPLY_02_SIZE (offsetof(smtpuv_reply, text_len) + sizeof(size_t))
#define FIELD_02_SIZE (offsetof(smtpuv_header_field, end) + sizeof(size_t))

static void test_reply_sized(void **state) {
  (void)state;
  smtpuv_proto *p;
  assert_int_equal(smtpuv_proto_new(NULL, &p), 0);
  assert_int_equal(smtpuv_proto_feed(p, "220 hi\r\n", 8), 0);
  /* too small for the 0.2 layout: refused, nothing popped */
  unsigned char buf[sizeof(smtpuv_reply) + 64];
  memset(buf, 0xA5, sizeof buf);
  assert_int_equal(smtpuv_proto_next_reply_sized(p, (smtpuv_reply *)buf,
                                                 REPLY_02_SIZE - 1),
                   SMTPUV_EINVAL);
  assert_int_equal(buf[0], 0xA5);
  assert_int_equal(smtpuv_proto_next_reply_sized(p, NULL, sizeof(smtpuv_reply)),
                   SMTPUV_EINVAL);
  /* a caller compiled against a newer, longer struct: the library fills its
     own size and leaves the rest alone */
  assert_int_equal(smtpuv_proto_next_reply_sized(p, (smtpuv_reply *)buf,
                                                 sizeof buf),
                   1);
  smtpuv_reply r;
  memcpy(&r, buf, sizeof r);
  assert_int_equal(r.struct_size, sizeof(smtpuv_reply));
  assert_int_equal(r.code, 220);
  assert_int_equal(r.command, SMTPUV_CMD_GREETING);
  assert_string_equal(r.text, "hi");
  for (size_t i = sizeof(smtpuv_reply); i < sizeof buf; i++)
    assert_int_equal(buf[i], 0xA5);
  /* the macro passes the header's size */
  assert_int_equal(smtpuv_proto_ehlo(p, "client.example"), 0);
  assert_int_equal(smtpuv_proto_feed(p, "250 ok\r\n", 8), 0);
  memset(&r, 0, sizeof r);
  assert_int_equal(smtpuv_proto_next_reply(p, &r), 1);
  assert_int_equal(r.struct_size, sizeof(smtpuv_reply));
  assert_int_equal(r.command, SMTPUV_CMD_EHLO);
  assert_int_equal(smtpuv_proto_next_reply(p, &r), 0);
  smtpuv_proto_free(p);
}

static void test_header_sized(void **state) {
  (void)state;
  static const char msg[] = "To: a@example.com\r\nSubject: x\r\n\r\nbody";
  size_t pos = 0;
  unsigned char buf[sizeof(smtpuv_header_field) + 32];
  memset(buf, 0x5A, sizeof buf);
  assert_int_equal(smtpuv_header_next_sized(msg, sizeof msg - 1, &pos,
                                            (smtpuv_header_field *)buf,
                                            FIELD_02_SIZE - 1),
                   SMTPUV_EINVAL);
  assert_int_equal(pos, 0);
  assert_int_equal(buf[0], 0x5A);
  assert_int_equal(smtpuv_header_next_sized(msg, sizeof msg - 1, &pos,
                                            (smtpuv_header_field *)buf,
                                            sizeof buf),
                   1);
  smtpuv_header_field f;
  memcpy(&f, buf, sizeof f);
  assert_int_equal(f.struct_size, sizeof(smtpuv_header_field));
  assert_int_equal(f.name_len, 2);
  assert_memory_equal(f.name, "To", 2);
  assert_int_equal(f.value_len, 14);
  assert_memory_equal(f.value, " a@example.com", 14);
  assert_int_equal(f.start, 0);
  assert_int_equal(f.end, 19);
  for (size_t i = sizeof(smtpuv_header_field); i < sizeof buf; i++)
    assert_int_equal(buf[i], 0x5A);
  memset(&f, 0, sizeof f);
  assert_int_equal(smtpuv_header_next(msg, sizeof msg - 1, &pos, &f), 1);
  assert_int_equal(f.struct_size, sizeof(smtpuv_header_field));
  assert_true(smtpuv_header_field_is(&f, "subject"));
  assert_int_equal(smtpuv_header_next(msg, sizeof msg - 1, &pos, &f), 0);
  assert_int_equal(pos, 31);
}

/* What a newer library might hand out: longer recipient elements. */
typedef struct rcpt_result_v9 {
  smtpuv_rcpt_result v02;
  char extra[24];
} rcpt_result_v9;

static void test_recipient_stride(void **state) {
  (void)state;
  rcpt_result_v9 rr[3];
  memset(rr, 0, sizeof rr);
  static const char *const addr[3] = {"a@x.example", "b@x.example",
                                      "c@x.example"};
  for (int i = 0; i < 3; i++) {
    rr[i].v02.address = addr[i];
    rr[i].v02.accepted = i != 1;
    rr[i].v02.code = i != 1 ? 250 : 550;
    rr[i].v02.enhanced = i != 1 ? "2.1.5" : "5.1.1";
    rr[i].v02.text = i != 1 ? "ok" : "no such user";
    memset(rr[i].extra, 'X', sizeof rr[i].extra);
  }
  smtpuv_send_result r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.status = SMTPUV_SEND_SENT;
  r.message = "sent";
  r.reply_enhanced = "";
  r.reply_text = "";
  r.recipients = &rr[0].v02;
  r.nrecipients = 3;
  r.naccepted = 2;
  r.recipient_size = sizeof(rcpt_result_v9);
  for (size_t i = 0; i < 3; i++) {
    const smtpuv_rcpt_result *x = smtpuv_send_result_recipient(&r, i);
    assert_ptr_equal(x, &rr[i].v02);
    assert_string_equal(x->address, addr[i]);
  }
  assert_null(smtpuv_send_result_recipient(&r, 3));
  assert_null(smtpuv_send_result_recipient(NULL, 0));
  /* a copy reads the source with its stride and is laid out with the
     library's own */
  smtpuv_send_result *copy;
  test_mem tm;
  test_mem_init(&tm, 0);
  assert_int_equal(smtpuv_send_result_dup(&tm.mem, &r, &copy), 0);
  assert_int_equal(copy->recipient_size, sizeof(smtpuv_rcpt_result));
  assert_int_equal(copy->nrecipients, 3);
  for (size_t i = 0; i < 3; i++) {
    const smtpuv_rcpt_result *x = smtpuv_send_result_recipient(copy, i);
    assert_ptr_equal(x, &copy->recipients[i]);
    assert_string_equal(x->address, addr[i]);
    assert_int_equal(x->code, i != 1 ? 250 : 550);
    assert_string_equal(x->text, i != 1 ? "ok" : "no such user");
  }
  smtpuv_send_result_free(copy);
  assert_int_equal(tm.live, 0);
  /* a result without recipient_size (struct_size of an older header) steps
     by the library's element size */
  r.struct_size = offsetof(smtpuv_send_result, recipient_size);
  r.recipients = &rr[0].v02;
  assert_ptr_equal(smtpuv_send_result_recipient(&r, 1),
                   (const char *)&rr[0].v02 + sizeof(smtpuv_rcpt_result));
}

static void test_version(void **state) {
  (void)state;
  const smtpuv_info *v = smtpuv_version(0);
  assert_non_null(v);
  assert_int_equal(v->version_num, SMTPUV_VERSION_NUM);
  assert_string_equal(v->version_str, SMTPUV_VERSION);
  char s[32];
  snprintf(s, sizeof s, "%d.%d.%d", SMTPUV_VERSION_MAJOR, SMTPUV_VERSION_MINOR,
           SMTPUV_VERSION_PATCH);
  assert_string_equal(s, SMTPUV_VERSION);
  assert_null(smtpuv_version(SMTPUV_VERSION_NUM + 1));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reply_sized),
      cmocka_unit_test(test_header_sized),
      cmocka_unit_test(test_recipient_stride),
      cmocka_unit_test(test_version),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
