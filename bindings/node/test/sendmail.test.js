// SPDX-License-Identifier: MIT
'use strict';
// client.sendMail(): messages composed by the library's composer
// (smtpuv/compose.h), sent to aiosmtpd, and the stored .eml parsed back with
// Python's email package under policy.strict (test/lib/parse_mail.py) and
// compared with what went in; the envelope from the stored .json.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const {spawnSync} = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const stream = require('node:stream');

const S = require('./lib/servers.js');
const smtp = require('..');

const PARSE = path.join(__dirname, 'lib', 'parse_mail.py');
const haveAio = S.pyHas('aiosmtpd');

function parse(eml) {
  const dir = S.tmpdir('eml');
  const f = path.join(dir, 'm.eml');
  fs.writeFileSync(f, eml);
  const r = spawnSync('/usr/bin/python3', [PARSE, f], {encoding: 'utf8', maxBuffer: 256 * 1024 * 1024});
  fs.rmSync(dir, {recursive: true, force: true});
  assert.equal(r.status, 0, `policy.strict refused the message: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const b64 = (b) => Buffer.from(b).toString('base64');
const crlf = (s) => s.replace(/\r?\n/g, '\r\n');

test('sendMail', {skip: !haveAio && 'python3-aiosmtpd missing'}, async (t) => {
  const aio = await S.startAiosmtpd(['--size', String(64 * 1024 * 1024)]);
  t.after(async () => { await aio.stop(); fs.rmSync(aio.outdir, {recursive: true, force: true}); });
  const ca = S.certs().ca;
  const client = smtp.createClient({host: '127.0.0.1', port: aio.port, tls: 'starttls', ca,
                                    servername: 'localhost'});
  t.after(() => client.close());
  let stored = 0;
  const last = async () => (await aio.messages(++stored)).slice(-1)[0];

  await t.test('UTF-8 subject and names, text+html, a non-ASCII attachment name, an inline cid image, Bcc only in the envelope', async () => {
    const png = crypto.randomBytes(3000);
    const pdf = crypto.randomBytes(10000);
    const text = 'Grüße aus Köln — ça va?\nZweite Zeile.\n';
    const html = '<p>Grüße — <img src="cid:logo@example.org"></p>\n';
    const subject = 'Café für Zoë: 東京 ✓ a long subject line that must be folded somewhere before 78 columns';
    const when = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
    const r = await client.sendMail({
      from: {name: 'Zoë Müller', address: 'zoe@example.org'},
      to: ['"Ops, Team" <ops@example.net>', 'Jürgen <jurgen@example.net>'],
      cc: 'cc@example.net',
      bcc: ['hidden@example.net'],
      replyTo: 'Réponse <reply@example.org>',
      subject, text, html, date: when,
      headers: {'X-Mailer-Test': 'smtpuv node ✓', 'X-Plain': 'ascii value'},
      attachments: [
        {filename: 'Übersicht 2026 — Bericht.pdf', content: pdf, contentType: 'application/pdf'},
        {filename: 'logo.png', content: png, contentType: 'image/png', cid: 'logo@example.org'},
        {filename: 'notes.txt', content: 'plain ASCII notes\r\n', contentType: 'text/plain'},
      ],
    });
    assert.equal(r.status, 'sent', r.message);
    assert.deepEqual(r.accepted, ['ops@example.net', 'jurgen@example.net', 'hidden@example.net', 'cc@example.net']);
    assert.match(r.messageId, /^<[0-9A-F]{32}@example\.org>$/i);
    assert.deepEqual(r.envelope, {from: 'zoe@example.org',
                                  to: ['ops@example.net', 'jurgen@example.net', 'hidden@example.net', 'cc@example.net']});
    const m = await last();
    assert.equal(m.meta.mail_from, 'zoe@example.org');
    assert.deepEqual(m.meta.rcpt_tos, r.envelope.to);
    assert.ok(!m.eml.includes('hidden@example.net'), 'the Bcc address is in the stored message');
    const p = parse(m.eml);
    assert.deepEqual(p.defects, []);
    assert.ok(p.ascii, 'non-ASCII byte in the header block');
    assert.ok(p.crlf, 'a line end that is not CRLF');
    assert.ok(p.longest <= 998);
    assert.deepEqual(p.from, [['Zoë Müller', 'zoe@example.org']]);
    assert.deepEqual(p.to, [['Ops, Team', 'ops@example.net'], ['Jürgen', 'jurgen@example.net']]);
    assert.deepEqual(p.cc, [['', 'cc@example.net']]);
    assert.deepEqual(p.replyTo, [['Réponse', 'reply@example.org']]);
    assert.equal(p.bcc, false);
    assert.equal(p.subject, subject);
    assert.equal(p.messageId, r.messageId);
    assert.equal(new Date(p.date).getTime(), when.getTime());
    const hdr = Object.fromEntries(p.headers);
    assert.equal(hdr['X-Mailer-Test'], 'smtpuv node ✓');
    assert.equal(hdr['X-Plain'], 'ascii value');
    assert.deepEqual(p.tree, ['multipart/mixed', [
      ['multipart/alternative', ['text/plain', ['multipart/related', ['text/html', 'image/png']]]],
      'application/pdf', 'text/plain']]);
    const [pt, ph, img, att, notes] = p.leaves;
    assert.equal(Buffer.from(pt.content, 'base64').toString(), crlf(text));
    assert.equal(pt.charset, 'utf-8');
    assert.equal(Buffer.from(ph.content, 'base64').toString(), crlf(html));
    assert.equal(img.cid, '<logo@example.org>');
    assert.equal(img.disposition, 'inline');
    assert.equal(img.content, b64(png));
    assert.equal(att.filename, 'Übersicht 2026 — Bericht.pdf');
    assert.equal(att.disposition, 'attachment');
    assert.equal(att.content, b64(pdf));
    assert.equal(notes.filename, 'notes.txt');
    assert.equal(Buffer.from(notes.content, 'base64').toString(), 'plain ASCII notes\r\n');
  });

  await t.test('html only, Sender and several From, a messageIdDomain, In-Reply-To/References', async () => {
    const r = await client.sendMail({
      from: ['a@example.com', 'B <b@example.com>'], sender: 'desk@example.com', to: 'c@example.net',
      subject: 'plain ascii', html: '<b>bold</b>', messageIdDomain: 'mid.example',
      inReplyTo: '<x1@example.com>', references: ['<x0@example.com>', '<x1@example.com>'],
    });
    assert.equal(r.status, 'sent', r.message);
    assert.match(r.messageId, /^<[0-9A-F]{32}@mid\.example>$/i);
    assert.deepEqual(r.envelope, {from: 'desk@example.com', to: ['c@example.net']});
    const m = await last();
    assert.equal(m.meta.mail_from, 'desk@example.com');
    const p = parse(m.eml);
    assert.deepEqual(p.from, [['', 'a@example.com'], ['B', 'b@example.com']]);
    assert.equal(p.tree, 'text/html');
    assert.equal(Buffer.from(p.leaves[0].content, 'base64').toString(), '<b>bold</b>\r\n');
    const hdr = Object.fromEntries(p.headers);
    assert.equal(hdr['In-Reply-To'], '<x1@example.com>');
    assert.equal(hdr.References, '<x0@example.com> <x1@example.com>');
    assert.equal(hdr.Sender, 'desk@example.com');
  });

  await t.test('a 12 MiB attachment from a file path and one from a stream.Readable', async (t) => {
    const dir = S.tmpdir('att');
    t.after(() => fs.rmSync(dir, {recursive: true, force: true}));
    const file = path.join(dir, 'big.bin');
    const big = crypto.randomBytes(12 * 1024 * 1024);
    fs.writeFileSync(file, big);
    const streamed = crypto.randomBytes(8 * 1024 * 1024 + 17);
    let pos = 0, pauses = 0;
    const rs = new stream.Readable({
      highWaterMark: 64 * 1024,
      read() {
        // one 64 KiB piece per read(): produced only as fast as it is taken
        if (pos >= streamed.length) { this.push(null); return; }
        const n = Math.min(64 * 1024, streamed.length - pos);
        this.push(streamed.subarray(pos, pos + n));
        pos += n;
      },
    });
    rs.on('pause', () => { pauses++; });
    const r = await client.sendMail({
      from: 'a@example.com', to: 'b@example.net', subject: 'big', text: 'see attachments',
      attachments: [{filename: 'big.bin', path: file},
                    {filename: 'ström.bin', content: rs, contentType: 'application/x-test'}],
    });
    assert.equal(r.status, 'sent', r.message);
    assert.ok(pauses > 0, 'the attachment stream was paused by back-pressure');
    assert.equal(r.replyCode, 250);
    const m = await last();
    const p = parse(m.eml);
    assert.equal(p.leaves.length, 3);
    assert.equal(p.leaves[1].filename, 'big.bin');
    assert.equal(p.leaves[1].type, 'application/octet-stream');
    assert.ok(Buffer.from(p.leaves[1].content, 'base64').equals(big), 'file attachment differs');
    assert.equal(p.leaves[2].filename, 'ström.bin');
    assert.equal(p.leaves[2].type, 'application/x-test');
    assert.ok(Buffer.from(p.leaves[2].content, 'base64').equals(streamed), 'stream attachment differs');
  });

  await t.test('an attachment stream that fails: the message fails, nothing is stored', async () => {
    let n = 0;
    const rs = new stream.Readable({
      read() {
        if (n++ < 4) this.push(Buffer.alloc(32 * 1024, 0x41));
        else this.destroy(new Error('disk on fire'));
      },
    });
    const r = await client.sendMail({from: 'a@example.com', to: 'b@example.net', text: 'x',
                                     attachments: [{filename: 'f.bin', content: rs}]});
    assert.equal(r.status, 'failed');
    assert.equal(r.code, 'SMTPUV_EBODY');
    assert.match(r.bodyError.message, /disk on fire/);
    // the next message is the next one stored
    const r2 = await client.sendMail({from: 'a@example.com', to: 'b@example.net', subject: 'after', text: 'y'});
    assert.equal(r2.status, 'sent', r2.message);
    const p = parse((await last()).eml);
    assert.equal(p.subject, 'after');
  });

  await t.test('composer refusals reject with the SMTPUV_E* code; nothing is sent', async () => {
    const base = {from: 'a@example.com', to: 'b@example.net', text: 'x'};
    const refuse = async (extra, code, re) => {
      await assert.rejects(client.sendMail({...base, ...extra}), (e) => {
        assert.ok(e instanceof Error);
        assert.equal(e.code, code, e.message);
        if (re) assert.match(e.message, re);
        return true;
      });
    };
    await refuse({subject: 'hi\r\nBcc: victim@example.com'}, 'SMTPUV_EHEADER', /subject/);
    await refuse({subject: 'hi\nX: y'}, 'SMTPUV_EHEADER');
    await refuse({headers: {'X-Evil': 'v\r\nBcc: victim@example.com'}}, 'SMTPUV_EHEADER', /X-Evil/);
    await refuse({from: {name: 'Eve\r\nBcc: x@example.com', address: 'eve@example.com'}}, 'SMTPUV_EHEADER');
    await refuse({to: ['ok@example.net', 'not an address']}, 'SMTPUV_EADDRESS', /to\[1\]/);
    await refuse({to: 'b@example.net\r\nDATA'}, 'SMTPUV_EADDRESS');
    await refuse({to: 'b@example.net\r\nRCPT TO:<x@example.com>'}, 'SMTPUV_EHEADER'); // as a display name
    await refuse({from: 'no-at-sign'}, 'SMTPUV_EADDRESS', /from/);
    await refuse({cc: 'two@example.net, three@example.net'}, 'SMTPUV_EADDRESS');
    await refuse({cc: 'zoë@example.net'}, 'SMTPUV_EADDRESS');
    await refuse({bcc: 'a b@example.net'}, 'SMTPUV_EADDRESS', /bcc/);
    await refuse({text: Buffer.from([0x61, 0xff, 0xfe, 0x0a])}, 'SMTPUV_EINVAL', /text/);
    await refuse({headers: {'Message-ID': '<x@y>'}}, 'SMTPUV_EINVAL');
    await refuse({attachments: [{content: 'x', contentType: 'multipart/mixed'}]}, 'SMTPUV_EINVAL', /attachments\[0\]/);
    await refuse({attachments: [{path: '/nonexistent/smtpuv-test'}]}, 'SMTPUV_EIO');
    await refuse({to: undefined}, 'SMTPUV_EHEADER', /finish/); // no recipient
    await refuse({attachments: [{content: 42}]}, 'SMTPUV_EINVAL');
    await refuse({messageId: '<mine@example.com>'}, 'SMTPUV_EINVAL', /messageIdDomain/);
    await refuse({attachments: [{content: new stream.PassThrough()}, {content: new stream.PassThrough()}]},
                 'SMTPUV_EINVAL', /one attachment may be a stream/);
    // with replaceInvalid the same bytes go out as U+FFFD
    const r = await client.sendMail({...base, text: Buffer.from([0x61, 0xff, 0x0a]), replaceInvalid: true});
    assert.equal(r.status, 'sent', r.message);
    const p = parse((await last()).eml);
    assert.equal(Buffer.from(p.leaves[0].content, 'base64').toString(), 'a\ufffd\r\n');
    // and only that message was stored
    const all = await aio.messages(stored);
    assert.equal(all.length, stored);
  });

  await t.test('after close(): SMTPUV_ECLOSED', async () => {
    const c2 = smtp.createClient({host: '127.0.0.1', port: aio.port, tls: 'none'});
    const closed = c2.close();
    await assert.rejects(c2.sendMail({from: 'a@example.com', to: 'b@example.net', text: 'x'}),
                         {code: 'SMTPUV_ECLOSED'});
    await closed;
  });
});

// Memory: a 96 MiB attachment from a path and one from a stream, each sent
// by a fresh child process to smtp-sink. Buffering the message whole would
// raise the child's peak RSS by more than 128 MiB (base64); streaming keeps
// it within a few MiB. The bound (48 MiB) leaves room for V8's own noise.
const haveSink = S.have('smtp-sink');
test('sendMail: large attachments stream with bounded memory',
     {skip: !haveSink && 'postfix (smtp-sink) missing'}, async (t) => {
  const sink = await S.startSink();
  t.after(async () => { await sink.stop(); fs.rmSync(sink.dir, {recursive: true, force: true}); });
  const dir = S.tmpdir('att');
  t.after(() => fs.rmSync(dir, {recursive: true, force: true}));
  const MB = 96;
  const file = path.join(dir, 'big');
  const piece = crypto.randomBytes(1 << 20);
  const fd = fs.openSync(file, 'w');
  for (let i = 0; i < MB; i++) fs.writeSync(fd, piece);
  fs.closeSync(fd);
  for (const mode of ['path', 'stream']) {
    const script = `
      const smtp = require(${JSON.stringify(path.join(__dirname, '..'))});
      const {Readable} = require('node:stream');
      const piece = Buffer.alloc(1 << 20, 0x5a);
      let n = 0;
      const att = ${JSON.stringify(mode)} === 'path'
        ? {filename: 'big', path: ${JSON.stringify(file)}}
        : {filename: 'big', content: new Readable({read() { this.push(n++ < ${MB} ? piece : null); }})};
      const c = smtp.createClient({host: '127.0.0.1', port: ${sink.port}, tls: 'none'});
      const before = process.resourceUsage().maxRSS;
      c.sendMail({from: 'a@example.com', to: 'b@example.net', text: 'x', attachments: [att]})
        .then(async (r) => {
          await c.close();
          console.log(JSON.stringify({status: r.status, message: r.message,
                                      grew: process.resourceUsage().maxRSS - before}));
        });
    `;
    const r = spawnSync(process.execPath, ['-e', script], {encoding: 'utf8', timeout: 120000});
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.status, 'sent', out.message);
    assert.ok(out.grew < 48 * 1024, `${mode}: peak RSS grew by ${out.grew} KiB for a ${MB} MiB attachment`);
    t.diagnostic(`${mode}: peak RSS grew by ${out.grew} KiB for a ${MB} MiB attachment`);
  }
  // both messages reached the sink whole (base64 of 96 MiB and more)
  const msgs = fs.readdirSync(path.join(sink.dir, 'msgs'));
  assert.equal(msgs.length, 2);
  for (const f of msgs) assert.ok(fs.statSync(path.join(sink.dir, 'msgs', f)).size > MB * (1 << 20) * 4 / 3);
});
