// SPDX-License-Identifier: MIT
// Types for smtpuv, the Node.js binding of the smtpuv ESMTP client.
/// <reference types="node" />
import type {Readable} from 'node:stream';

export type TlsMode = 'starttls' | 'required' | 'opportunistic' | 'implicit' | 'none';

export interface TokenRequest {
  /** true when the server rejected the previous token: fetch a fresh one. */
  rejected: boolean;
}

export type Auth =
  | {user: string; pass: string; mechanism?: string}
  | {user: string; token: (req: TokenRequest) => string | Promise<string>; mechanism?: string};

export interface ClientOptions {
  host: string;
  /** default 587, or 465 with tls 'implicit' */
  port?: number;
  /** default 'starttls' (STARTTLS required before AUTH or MAIL) */
  tls?: TlsMode;
  auth?: Auth;
  /** trust anchors (PEM); default: Node's tls.rootCertificates */
  ca?: string | Buffer | Array<string | Buffer>;
  /** name for SNI and certificate checks when it differs from host */
  servername?: string;
  /** false accepts any certificate (tests only) */
  rejectUnauthorized?: boolean;
  /** EHLO name */
  name?: string;
  /** milliseconds; 0 waits forever */
  timeouts?: {connect?: number; command?: number; data?: number; final?: number; idle?: number};
  /** connections to the server used at once (1..64, default 1) */
  maxConnections?: number;
  /** default true */
  pipelining?: boolean;
  /** BDAT when offered; default true */
  chunking?: boolean;
  /** sent only when every recipient is accepted */
  requireAllRecipients?: boolean;
  /** AUTH without TLS (default false: refused) */
  allowPlaintextAuth?: boolean;
}

export interface Message {
  /** MAIL FROM; '' is the null sender <> */
  from: string;
  to?: string | string[];
  cc?: string | string[];
  /** envelope only: never written into the message */
  bcc?: string | string[];
  /** the complete message (headers and body); a stream is read with
      back-pressure and never buffered whole */
  raw: Buffer | Uint8Array | string | Readable | ReadableStream<Uint8Array>;
  /** a stream's size in bytes, when known (SIZE=) */
  size?: number;
}

/** 'addr@example.org', 'Name <addr@example.org>', '"Name, Inc." <addr@example.org>'
    or {name, address}; the name is UTF-8 text, the address an ASCII addr-spec */
export type Mailbox = string | {name?: string | null; address: string};

export interface Attachment {
  /** UTF-8 file name (RFC 2231 parameters when not ASCII) */
  filename?: string;
  /** exactly one of content and path. A stream (at most one per message)
      is read with back-pressure while the message is sent, never buffered
      whole; a path is opened when sendMail() is called and read while
      sending. Both go out base64-encoded. */
  content?: Buffer | Uint8Array | string | Readable | ReadableStream<Uint8Array>;
  path?: string;
  /** a stream's size in bytes, when known (then the message's SIZE= is known) */
  size?: number;
  /** "type/subtype[; params]"; default application/octet-stream */
  contentType?: string;
  /** an inline part referenced as cid:<cid> from the html (multipart/related) */
  cid?: string;
}

export interface Mail {
  from: Mailbox | Mailbox[];
  /** required with several From mailboxes; then the envelope sender */
  sender?: Mailbox;
  replyTo?: Mailbox | Mailbox[];
  to?: Mailbox | Mailbox[];
  cc?: Mailbox | Mailbox[];
  /** envelope only: never written into the message */
  bcc?: Mailbox | Mailbox[];
  /** UTF-8 (RFC 2047 encoded words as needed) */
  subject?: string;
  /** text/plain; a Buffer must hold UTF-8 */
  text?: string | Buffer | Uint8Array;
  /** text/html (with text: multipart/alternative) */
  html?: string | Buffer | Uint8Array;
  attachments?: Attachment[];
  /** more header fields, in order; values are UTF-8 text. Names the
      composer writes itself (From, To, Subject, Date, Message-ID,
      Content-Type...) are refused. */
  headers?: Record<string, string | string[]> | Array<[string, string]>;
  /** default: now; written in UTC (+0000) */
  date?: Date | number;
  /** the domain of the generated Message-ID (default: the sender's) */
  messageIdDomain?: string;
  inReplyTo?: string;
  references?: string | string[];
  /** invalid UTF-8 in a Buffer text/html becomes U+FFFD instead of a refusal */
  replaceInvalid?: boolean;
}

export interface RejectedRecipient {
  address: string;
  /** the RCPT reply code; 0 when RCPT was never answered */
  code: number;
  enhanced: string;
  text: string;
}

export interface SendResult {
  /** 'unknown': the connection was lost after the final dot was written;
      the server may or may not have taken the message */
  status: 'sent' | 'failed' | 'unknown' | 'canceled';
  accepted: string[];
  rejected: RejectedRecipient[];
  /** the deciding reply, "250 2.0.0 Ok: queued as ...", or '' */
  response: string;
  replyCode: number;
  enhanced: string;
  /** SMTPUV_E* name, null when sent to every recipient */
  code: string | null;
  /** where it was decided: 'connect', 'TLS', 'AUTH', 'RCPT', 'end-of-data'... */
  phase: string;
  message: string;
  attempts: number;
  tls: string | null;
  envelope: {from: string; to: string[]};
  /** sendMail(): the generated Message-ID, "<...@domain>" */
  messageId?: string;
  /** a body or attachment stream's error when it failed the message */
  bodyError?: Error;
}

/** Usage errors: code is the SMTPUV_E* name (SMTPUV_EINVAL, SMTPUV_EADDRESS, SMTPUV_ECLOSED...). */
export interface SmtpuvError extends Error {
  code: string;
}

export declare class Client {
  /** messages whose promise has not settled */
  readonly pending: number;
  /** resolves with the outcome; rejects only for usage errors (SmtpuvError) */
  send(message: Message): Promise<SendResult>;
  /** composes with the library's composer and sends; resolves like send()
      (with messageId); rejects with SmtpuvError when the composer refuses
      the message (SMTPUV_EADDRESS, SMTPUV_EHEADER, SMTPUV_EINVAL, SMTPUV_EIO)
      or for usage errors */
  sendMail(mail: Mail): Promise<SendResult>;
  /** finishes messages on the wire, cancels the rest, QUIT; resolves when closed */
  close(): Promise<void>;
  /** ends every connection at once; pending sends resolve; resolves when closed */
  abort(): Promise<void>;
}

export declare function createClient(options: ClientOptions): Client;
export declare const version: string;
