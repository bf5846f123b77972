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
  /** finishes messages on the wire, cancels the rest, QUIT; resolves when closed */
  close(): Promise<void>;
  /** ends every connection at once; pending sends resolve; resolves when closed */
  abort(): Promise<void>;
}

export declare function createClient(options: ClientOptions): Client;
export declare const version: string;
