// SPDX-License-Identifier: MIT
'use strict';
/*
 * smtpuv for Node.js: an asynchronous ESMTP client that runs the smtpuv C
 * library on Node's own event loop (see README.md).
 *
 *   const smtp = require('smtpuv');
 *   const client = smtp.createClient({host: 'smtp.example.com', port: 587,
 *                                     auth: {user, pass}});
 *   const r = await client.send({from, to: ['a@example.org'], raw});
 *   // r.status: 'sent' | 'failed' | 'unknown' | 'canceled'
 *   await client.close();
 */
const path = require('node:path');
const stream = require('node:stream');
const tls = require('node:tls');

const native = require(process.env.SMTPUV_NODE_ADDON ||
                       path.join(__dirname, 'build', 'Release', 'smtpuv.node'));

const EV_SENT = 0, EV_CLOSED = 1, EV_TOKEN = 2, EV_DRAIN = 3;
const TLS_MODES = {starttls: 0, required: 0, opportunistic: 1, implicit: 2, none: 3};
const TIMEOUTS = ['connect', 'command', 'data', 'final', 'idle'];

/** An Error whose `code` is the SMTPUV_E* name. */
function smtpError(rc, detail) {
  const {name, message} = native.strerror(rc);
  const e = new Error(detail ? `${message}: ${detail}` : message);
  e.code = name;
  return e;
}

function usage(detail) {
  const e = new TypeError(detail);
  e.code = 'SMTPUV_EINVAL';
  return e;
}

let rootPem = null; // Node's own trust store, as one PEM bundle
function defaultCa() {
  if (rootPem === null)
    rootPem = Buffer.from(tls.rootCertificates.join('\n') + '\n');
  return rootPem;
}

function caBuffer(ca) {
  const list = Array.isArray(ca) ? ca : [ca];
  const parts = list.map((c) => {
    if (Buffer.isBuffer(c)) return c.toString('latin1');
    if (typeof c === 'string') return c;
    throw usage('ca: a PEM string or Buffer (or an array of them)');
  });
  return Buffer.from(parts.join('\n') + '\n', 'latin1');
}

function normalise(o) {
  if (o === null || typeof o !== 'object') throw usage('createClient: options object required');
  if (typeof o.host !== 'string' || o.host === '') throw usage('createClient: host required');
  const tlsMode = o.tls === undefined ? 'starttls' : o.tls;
  if (!(tlsMode in TLS_MODES)) throw usage(`createClient: tls must be one of ${Object.keys(TLS_MODES).join(', ')}`);
  const n = {host: o.host, tls: TLS_MODES[tlsMode]};
  if (o.port !== undefined) {
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw usage('createClient: bad port');
    n.port = o.port;
  }
  if (o.servername !== undefined) n.servername = o.servername;
  if (o.name !== undefined) n.name = o.name;
  if (o.rejectUnauthorized === false) n.verify = 0;
  if (o.allowPlaintextAuth) n.allowPlaintextAuth = 1;
  if (o.pipelining === false) n.pipelining = 0;
  if (o.chunking === false) n.chunking = 0;
  if (o.requireAllRecipients) n.requireAll = 1;
  if (o.timeouts !== undefined) {
    n.timeouts = {};
    for (const k of Object.keys(o.timeouts)) {
      if (!TIMEOUTS.includes(k)) throw usage(`createClient: unknown timeout ${k}`);
      const v = o.timeouts[k];
      if (!Number.isInteger(v) || v < 0) throw usage(`createClient: timeouts.${k} must be ms >= 0`);
      n.timeouts[k] = v;
    }
  }
  if (n.tls !== TLS_MODES.none) n.ca = o.ca !== undefined ? caBuffer(o.ca) : defaultCa();
  let token = null;
  if (o.auth !== undefined && o.auth !== null) {
    const a = o.auth;
    if (typeof a.user !== 'string') throw usage('auth.user required');
    n.user = a.user;
    if (typeof a.token === 'function') {
      token = a.token;
      n.token = 1;
    } else if (typeof a.pass === 'string') {
      n.pass = a.pass;
    } else {
      throw usage('auth: pass (string) or token (function) required');
    }
    if (a.mechanism !== undefined) n.mechanism = a.mechanism;
  }
  const max = o.maxConnections === undefined ? 1 : o.maxConnections;
  if (!Number.isInteger(max) || max < 1 || max > 64) throw usage('maxConnections: 1..64');
  return {n, token, max};
}

function addresses(v, what) {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  for (const a of list)
    if (typeof a !== 'string' || a === '') throw usage(`send: ${what} must be address strings`);
  return list;
}

// ---- sendMail: the message as the composer wants it --------------------------------

const F_FROM = 0, F_SENDER = 1, F_REPLY_TO = 2, F_TO = 3, F_CC = 4, F_BCC = 5;

/** 'addr', 'Name <addr>', '"Name" <addr>' or {name, address} -> [name, address]. */
function mailbox(v, what) {
  if (v !== null && typeof v === 'object' && typeof v.address === 'string') {
    if (v.name !== undefined && v.name !== null && typeof v.name !== 'string')
      throw usage(`sendMail: ${what}.name must be a string`);
    return [v.name || null, v.address];
  }
  if (typeof v !== 'string') throw usage(`sendMail: ${what} must be an address string or {name, address}`);
  const m = /^\s*(.*?)\s*<([^<>]*)>\s*$/s.exec(v);
  if (m === null) return [null, v.trim()];
  let name = m[1];
  if (name.length >= 2 && name.startsWith('"') && name.endsWith('"'))
    name = name.slice(1, -1).replace(/\\(.)/gs, '$1');
  return [name === '' ? null : name, m[2]];
}

function mailboxes(v, what) {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((a, i) => mailbox(a, Array.isArray(v) ? `${what}[${i}]` : what));
}

function textBuffer(v, what) {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw usage(`sendMail: ${what} must be a string or Buffer`);
}

function optString(v, what) {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw usage(`sendMail: ${what} must be a string`);
  return v;
}

function mailSpec(mail) {
  if (mail === null || typeof mail !== 'object') throw usage('sendMail: message object required');
  const addrs = [], labels = [];
  const add = (field, v, what) => {
    for (const [i, mb] of mailboxes(v, what).entries()) {
      addrs.push([field, mb[0], mb[1]]);
      labels.push(Array.isArray(v) ? `${what}[${i}]` : what);
    }
  };
  if (mail.from === undefined) throw usage('sendMail: from required');
  add(F_FROM, mail.from, 'from');
  add(F_SENDER, mail.sender, 'sender');
  add(F_REPLY_TO, mail.replyTo, 'replyTo');
  add(F_TO, mail.to, 'to');
  add(F_CC, mail.cc, 'cc');
  add(F_BCC, mail.bcc, 'bcc');
  const spec = {addrs, labels, headers: [], attachments: []};
  spec.subject = optString(mail.subject, 'subject');
  spec.inReplyTo = optString(mail.inReplyTo, 'inReplyTo');
  spec.references = optString(Array.isArray(mail.references) ? mail.references.join(' ') : mail.references,
                              'references');
  if (mail.messageId !== undefined)
    throw usage('sendMail: messageId cannot be chosen (the composer generates it); messageIdDomain sets its domain');
  spec.messageIdDomain = optString(mail.messageIdDomain, 'messageIdDomain');
  spec.text = textBuffer(mail.text, 'text');
  spec.html = textBuffer(mail.html, 'html');
  if (mail.replaceInvalid) spec.replaceInvalid = 1;
  if (mail.date !== undefined && mail.date !== null) {
    const d = mail.date instanceof Date ? mail.date.getTime() : mail.date;
    if (typeof d !== 'number' || !Number.isFinite(d)) throw usage('sendMail: date must be a Date or ms since the epoch');
    spec.date = Math.floor(d / 1000);
    spec.dateOffset = 0;
  }
  if (mail.headers !== undefined && mail.headers !== null) {
    const h = mail.headers;
    const list = Array.isArray(h) ? h : Object.entries(h);
    for (const e of list) {
      if (!Array.isArray(e) || e.length !== 2) throw usage('sendMail: headers must be {name: value} or [[name, value]]');
      const vals = Array.isArray(e[1]) ? e[1] : [e[1]];
      for (const v of vals) {
        if (typeof e[0] !== 'string' || typeof v !== 'string')
          throw usage('sendMail: header names and values must be strings');
        spec.headers.push([e[0], v]);
      }
    }
  }
  let src = null;
  const atts = mail.attachments === undefined || mail.attachments === null ? [] : mail.attachments;
  if (!Array.isArray(atts)) throw usage('sendMail: attachments must be an array');
  atts.forEach((a, i) => {
    if (a === null || typeof a !== 'object') throw usage(`sendMail: attachments[${i}] must be an object`);
    const p = {contentType: optString(a.contentType, `attachments[${i}].contentType`),
               filename: optString(a.filename, `attachments[${i}].filename`),
               cid: optString(a.cid, `attachments[${i}].cid`)};
    const c = a.content;
    if (a.path !== undefined) {
      if (c !== undefined) throw usage(`sendMail: attachments[${i}]: content or path, not both`);
      p.path = optString(a.path, `attachments[${i}].path`);
    } else if (typeof c === 'string') {
      p.data = Buffer.from(c, 'utf8');
    } else if (Buffer.isBuffer(c)) {
      p.data = c;
    } else if (c instanceof Uint8Array) {
      p.data = Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    } else if (c instanceof stream.Readable || (c && typeof c.getReader === 'function')) {
      if (src !== null) throw usage('sendMail: at most one attachment may be a stream (give the others as a Buffer or a path)');
      src = c instanceof stream.Readable ? c : stream.Readable.fromWeb(c);
      p.stream = 1;
      if (a.size !== undefined) {
        if (!Number.isInteger(a.size) || a.size < 0) throw usage(`sendMail: attachments[${i}].size must be bytes >= 0`);
        p.size = a.size;
      }
    } else {
      throw usage(`sendMail: attachments[${i}]: content (Buffer, string, stream.Readable) or path required`);
    }
    spec.attachments.push(p);
  });
  // the envelope the composer derives (smtpuv_compose_sender/recipients)
  const sender = addrs.find((e) => e[0] === F_SENDER) || addrs.find((e) => e[0] === F_FROM);
  const to = [];
  for (const f of [F_TO, F_BCC, F_CC])
    for (const e of addrs) if (e[0] === f && !to.includes(e[2])) to.push(e[2]);
  return {spec, src, envelope: {from: sender ? sender[2] : '', to}};
}

/** The composer step that failed, in the caller's words. */
function describeStep(step, spec) {
  if (typeof step !== 'string') return undefined;
  const m = /^address (\d+)$/.exec(step);
  if (m) {
    const i = Number(m[1]);
    return `${spec.labels[i]} (${spec.addrs[i][2]})`;
  }
  const h = /^header (\d+)$/.exec(step);
  if (h) return `headers ${spec.headers[Number(h[1])][0]}`;
  const a = /^attachment (\d+)$/.exec(step);
  if (a) return `attachments[${a[1]}]`;
  return step;
}

class Client {
  constructor(options) {
    const {n, token, max} = normalise(options);
    this._token = token;
    this._nextId = 1;
    this._msgs = new Map(); // id -> {resolve, stream, h}
    this._closing = null;   // close() promise
    this._closeResolve = null;
    this._open = 0;
    this._handles = [];
    for (let i = 0; i < max; i++) {
      const slot = {h: null, pending: 0, open: true, fn: null};
      // the addon holds the event function weakly while idle: keep it here
      slot.fn = (kind, a, b) => this._event(slot, kind, a, b);
      slot.h = native.newClient(n, slot.fn);
      this._handles.push(slot);
      this._open++;
    }
  }

  /** Messages whose promise has not settled yet. */
  get pending() { return this._msgs.size; }

  /**
   * Send one message. Resolves with the outcome (a server refusal, a lost
   * connection or a cancellation is an outcome, not an exception); rejects
   * only for usage errors (Error with code SMTPUV_EINVAL, SMTPUV_EADDRESS,
   * SMTPUV_ECLOSED...).
   */
  send(msg) {
    return new Promise((resolve, reject) => {
      if (msg === null || typeof msg !== 'object') throw usage('send: message object required');
      if (typeof msg.from !== 'string') throw usage('send: from must be a string ("" for <>)');
      const to = [...addresses(msg.to, 'to'), ...addresses(msg.cc, 'cc'), ...addresses(msg.bcc, 'bcc')];
      if (to.length === 0) throw usage('send: at least one recipient');
      let raw = msg.raw, src = null;
      if (typeof raw === 'string') raw = Buffer.from(raw);
      else if (raw instanceof Uint8Array && !Buffer.isBuffer(raw)) raw = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
      else if (raw instanceof stream.Readable) { src = raw; raw = null; }
      else if (raw && typeof raw.getReader === 'function') { src = stream.Readable.fromWeb(raw); raw = null; }
      else if (!Buffer.isBuffer(raw)) throw usage('send: raw must be a Buffer, string, stream.Readable or ReadableStream');
      if (this._closing) throw smtpError(closedCode(), 'the client is closing');
      // least busy connection
      let slot = null;
      for (const s of this._handles)
        if (s.open && (slot === null || s.pending < slot.pending)) slot = s;
      if (slot === null) throw smtpError(closedCode());
      const id = this._nextId++;
      if (this._nextId > 0xffffffff) this._nextId = 1;
      const size = src !== null && Number.isInteger(msg.size) ? msg.size : 0;
      const rc = native.send(slot.h, id, msg.from, to, raw, size);
      if (rc !== 0) throw smtpError(rc);
      slot.pending++;
      const rec = {resolve, src: null, slot, envelope: {from: msg.from, to}};
      this._msgs.set(id, rec);
      if (src !== null) this._pipe(slot, id, rec, src);
    });
  }

  /**
   * Compose a message with the library's composer (smtpuv/compose.h) and
   * send it; the envelope comes from From/Sender and To, Cc, Bcc (Bcc is
   * never written into the message). Resolves like send(), with
   * `messageId`; rejects with an Error whose code is the SMTPUV_E* name
   * when the composer refuses the message (SMTPUV_EADDRESS a bad address,
   * SMTPUV_EHEADER CR/LF/NUL in a header value, SMTPUV_EINVAL invalid
   * UTF-8 in a text part, a bad content type...).
   */
  sendMail(mail) {
    return new Promise((resolve, reject) => {
      const {spec, src, envelope} = mailSpec(mail);
      if (this._closing) throw smtpError(closedCode(), 'the client is closing');
      let slot = null;
      for (const s of this._handles)
        if (s.open && (slot === null || s.pending < slot.pending)) slot = s;
      if (slot === null) throw smtpError(closedCode());
      const id = this._nextId++;
      if (this._nextId > 0xffffffff) this._nextId = 1;
      const r = native.sendMail(slot.h, id, spec);
      const rc = Array.isArray(r) ? r[0] : r;
      if (rc !== 0) throw smtpError(rc, describeStep(r[1], spec));
      slot.pending++;
      const rec = {resolve, src: null, slot, envelope};
      this._msgs.set(id, rec);
      if (src !== null) this._pipe(slot, id, rec, src);
    });
  }

  _pipe(slot, id, rec, src) {
    rec.src = src;
    const onData = (chunk) => {
      if (typeof chunk === 'string') chunk = Buffer.from(chunk);
      if (!native.push(slot.h, id, chunk)) src.pause();
    };
    const onEnd = () => native.push(slot.h, id, null);
    const onError = () => native.push(slot.h, id, false);
    rec.unpipe = () => {
      src.off('data', onData);
      src.off('end', onEnd);
      src.off('error', onError);
    };
    src.on('data', onData);
    src.once('end', onEnd);
    src.once('error', onError);
  }

  _event(slot, kind, a, b) {
    if (kind === EV_SENT) {
      const rec = this._msgs.get(a);
      if (rec === undefined) return;
      this._msgs.delete(a);
      slot.pending--;
      if (rec.src !== null) {
        rec.unpipe();
        if (!rec.src.readableEnded) rec.src.destroy();
        if (b.status !== 'sent' && b.code === 'SMTPUV_EBODY' && rec.src.errored)
          b.bodyError = rec.src.errored;
      }
      b.envelope = rec.envelope;
      rec.resolve(b);
    } else if (kind === EV_DRAIN) {
      const rec = this._msgs.get(a);
      if (rec !== undefined && rec.src !== null) rec.src.resume();
    } else if (kind === EV_TOKEN) {
      this._askToken(slot, a, b);
    } else if (kind === EV_CLOSED) {
      slot.open = false;
      if (--this._open === 0 && this._closeResolve !== null) this._closeResolve();
    }
  }

  _askToken(slot, seq, rejected) {
    let p;
    try {
      p = Promise.resolve(this._token({rejected}));
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then((tok) => {
      if (typeof tok !== 'string' || tok === '') throw new Error('the token callback gave no token');
      native.tokenAnswer(slot.h, seq, tok, null);
    }).catch((e) => {
      native.tokenAnswer(slot.h, seq, null, `the token callback failed: ${e && e.message ? e.message : e}`);
    });
  }

  /**
   * Close: messages not started are canceled, those on the wire finish,
   * then QUIT. Resolves when every connection is closed. Calling it again
   * returns the same promise.
   */
  close() {
    if (this._closing) return this._closing;
    this._closing = new Promise((resolve) => { this._closeResolve = resolve; });
    if (this._open === 0) this._closeResolve();
    for (const s of this._handles) if (s.open) native.close(s.h);
    return this._closing;
  }

  /**
   * Abort: every connection ends at once. Pending sends resolve (canceled,
   * failed, or unknown after the final dot was written); close() resolves.
   */
  abort() {
    if (!this._closing) {
      this._closing = new Promise((resolve) => { this._closeResolve = resolve; });
      if (this._open === 0) this._closeResolve();
    }
    for (const s of this._handles) if (s.open) native.abort(s.h);
    return this._closing;
  }
}

let eclosed = 0;
function closedCode() {
  if (eclosed === 0) {
    for (let rc = -1; rc > -400; rc--)
      if (native.strerror(rc).name === 'SMTPUV_ECLOSED') { eclosed = rc; break; }
  }
  return eclosed;
}

function createClient(options) {
  return new Client(options);
}

module.exports = {createClient, Client, version: native.version};
