// The transport with real sockets on 127.0.0.1 (ports 28000-28099): several frames per zmq message,
// both ways (see the framing notes at the top of transport/rpc.ts).
import { afterEach, describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';
import { ATTACH_BYTES, ATTACHMENT_TAG, encodeFrame, encodeFrameParts, forEachFrame, isProblem, MAX_FRAMES_PER_MESSAGE, messageParts, type Frame, type FrameProblem } from '../transport/codec.js';
import type { GetReq, Reply, Request } from '../transport/messages.js';
import { RpcClient, RpcError, RpcServer, type Handler } from '../transport/rpc.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(port: number, handler: Handler, maxMessageBytes = 1 << 20): Promise<RpcServer> {
  const s = new RpcServer({ endpoint: `tcp://127.0.0.1:${port}`, maxMessageBytes, handler });
  await s.start();
  cleanups.push(() => s.close());
  return s;
}

function client(port: number, maxMessageBytes = 1 << 20, connectWaitMs?: number): RpcClient {
  const c = new RpcClient(`tcp://127.0.0.1:${port}`, { timeoutMs: 5000, maxInflight: 2000, maxMessageBytes, connectWaitMs });
  cleanups.push(() => c.close());
  return c;
}

function dealer(port: number): zmq.Dealer {
  const d = new zmq.Dealer({ linger: 0 });
  d.connect(`tcp://127.0.0.1:${port}`);
  cleanups.push(() => d.close());
  return d;
}

const get = (row: string): GetReq => ({ t: 'get', tablet: 0, row, col: 'c' });
/** Answers a get with its row, so a reply shows which request it answers. */
const echoRow: Handler = (req, respond) => respond({ t: 'cols', cols: [(req as GetReq).row] });

/** All frames of a message's parts (lone frames or bundles, with their attachments). */
function framesOf(parts: Uint8Array[], maxBytes = 64 << 20): (Frame | FrameProblem)[] {
  const out: (Frame | FrameProblem)[] = [];
  forEachFrame(parts, 0, maxBytes, (f) => {
    out.push(f);
  });
  return out;
}

/** Reads messages until `n` frames have arrived; returns the frames, and the number of frames and bytes of each message. */
async function readFrames(d: zmq.Dealer, n: number): Promise<{ frames: Frame[]; sizes: number[]; bytes: number[] }> {
  const frames: Frame[] = [];
  const sizes: number[] = [];
  const bytes: number[] = [];
  while (frames.length < n) {
    const parts = await d.receive();
    bytes.push(parts.reduce((sum, p) => sum + p.length, 0));
    const got = framesOf(parts);
    sizes.push(got.length);
    for (const f of got) {
      if (isProblem(f)) throw new Error(f.reason);
      frames.push(f);
    }
  }
  return { frames, sizes, bytes };
}

describe('rpc framing', () => {
  it('answers many requests issued in one turn, each with its own id', async () => {
    const s = await server(28001, echoRow);
    const c = client(28001);
    await c.request(get('warm-up')); // connected
    const received = s.stats.received;
    const replies = await Promise.all(Array.from({ length: 1000 }, (_, i) => c.request(get(`r${i}`))));
    replies.forEach((r, i) => expect(r).toEqual({ t: 'cols', cols: [`r${i}`] }));
    expect(s.stats.received - received).toBe(1000);
    expect(s.stats.malformed).toBe(0);
  });

  it('sends the requests of one turn in one message and takes several replies per message', async () => {
    const router = new zmq.Router({ linger: 0 });
    cleanups.push(() => router.close());
    await router.bind('tcp://127.0.0.1:28002');
    const c = client(28002);
    const pending = Array.from({ length: 10 }, (_, i) => c.request(get(`r${i}`)));
    const [identity, ...parts] = await router.receive();
    expect(parts.length).toBe(1); // one bundle
    const frames = framesOf(parts) as Frame[];
    expect(frames.length).toBe(10);
    expect(frames.map((f) => (f.body as GetReq).row)).toEqual(Array.from({ length: 10 }, (_, i) => `r${i}`));
    // Answer in reverse order, all in one message: replies match by id, not by position.
    const replies = frames.reverse().map((f) => encodeFrame(f.id, { t: 'cols', cols: [(f.body as GetReq).row] }));
    await router.send([identity!, ...replies]);
    const got = await Promise.all(pending);
    got.forEach((r, i) => expect(r).toEqual({ t: 'cols', cols: [`r${i}`] }));
  });

  it('answers each part of a message on its own: garbage and oversized parts get errors, the others replies', async () => {
    const s = await server(28003, echoRow, 1024);
    const d = dealer(28003);
    await d.send([
      encodeFrame(1, get('one')),
      Buffer.from([0xff, 0x00, 0x13]), // not CBOR
      encodeFrame(3, { t: 'launch-missiles' } as never), // not a request
      Buffer.alloc(2000, 7), // over maxMessageBytes
      Buffer.alloc(0), // empty
      encodeFrame(0, { t: 'ping' }), // one-way: no reply
      encodeFrame(7, get('seven')),
    ]);
    const { frames, sizes } = await readFrames(d, 6);
    expect(sizes).toEqual([6]); // answered together, in order
    expect(frames.map((f) => f.id)).toEqual([1, 0, 3, 0, 0, 7]);
    const bodies = frames.map((f) => f.body as Reply & { code?: string });
    expect(bodies[0]).toEqual({ t: 'cols', cols: ['one'] });
    expect(bodies.slice(1, 5).map((b) => b.code)).toEqual(['bad_request', 'bad_request', 'too_big', 'bad_request']);
    expect(bodies[5]).toEqual({ t: 'cols', cols: ['seven'] });
    expect(s.stats).toMatchObject({ received: 7, malformed: 3, oversized: 1, dropped: 0 });
    // Still serving.
    expect(await client(28003, 1024).request(get('after'))).toEqual({ t: 'cols', cols: ['after'] });
  });

  it('never mixes up replies to different clients, and keeps each one in order', async () => {
    // Hold every request, then answer all of them interleaved: each client must get its own, in order.
    const held: [string, (r: Reply) => void][] = [];
    const n = 50;
    await server(28004, (req, respond) => {
      held.push([(req as GetReq).row, respond]);
      if (held.length === 2 * n) for (const [row, r] of held) r({ t: 'cols', cols: [row] });
    });
    const a = dealer(28004);
    const b = dealer(28004);
    // Both use the same request ids.
    await a.send(Array.from({ length: n }, (_, i) => encodeFrame(i + 1, get(`a${i + 1}`))));
    await b.send(Array.from({ length: n }, (_, i) => encodeFrame(i + 1, get(`b${i + 1}`))));
    const [ra, rb] = await Promise.all([readFrames(a, n), readFrames(b, n)]);
    for (const [who, got] of [['a', ra], ['b', rb]] as const) {
      expect(got.frames.map((f) => f.id)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      expect(got.frames.map((f) => (f.body as { cols: string[] }).cols[0])).toEqual(Array.from({ length: n }, (_, i) => `${who}${i + 1}`));
    }
  });

  it(`handles at most ${MAX_FRAMES_PER_MESSAGE} frames of a message and answers the rest too_big`, async () => {
    const s = await server(28005, echoRow);
    const d = dealer(28005);
    const total = MAX_FRAMES_PER_MESSAGE + 44;
    await d.send(Array.from({ length: total }, (_, i) => encodeFrame(i + 1, get(`r${i + 1}`))));
    const { frames, sizes } = await readFrames(d, total);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_FRAMES_PER_MESSAGE);
    expect(frames.map((f) => f.id)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    const handled = frames.slice(0, MAX_FRAMES_PER_MESSAGE).map((f) => (f.body as { cols: string[] }).cols[0]);
    expect(handled).toEqual(Array.from({ length: MAX_FRAMES_PER_MESSAGE }, (_, i) => `r${i + 1}`));
    expect(frames.slice(MAX_FRAMES_PER_MESSAGE).every((f) => (f.body as { code?: string }).code === 'too_big')).toBe(true);
    expect(s.stats).toMatchObject({ received: total, oversized: 44, malformed: 0 });
  });

  it('keeps a message within maxMessageBytes unless a single frame is bigger', async () => {
    const max = 64 << 10;
    // Server -> client: 20 KiB replies, at most three per message; a 100 KiB one alone.
    await server(28006, (req, respond) => {
      const size = (req as GetReq).row === 'big' ? 100 << 10 : 20 << 10;
      respond({ t: 'value', value: new Uint8Array(size) });
    }, 256 << 10);
    const d = dealer(28006);
    await d.send([...Array.from({ length: 10 }, (_, i) => encodeFrame(i + 1, get(`r${i}`))), encodeFrame(11, get('big'))]);
    const replies = await readFrames(d, 11);
    expect(replies.frames.map((f) => f.id)).toEqual(Array.from({ length: 11 }, (_, i) => i + 1));
    replies.sizes.forEach((parts, i) => expect(parts === 1 || replies.bytes[i]! <= Math.min(256 << 10, 4 << 20)).toBe(true));
    // Client -> server, with a smaller limit: 20 KiB requests, at most three per message.
    const router = new zmq.Router({ linger: 0 });
    cleanups.push(() => router.close());
    await router.bind('tcp://127.0.0.1:28007');
    const c = client(28007, max);
    const value = new Uint8Array(20 << 10);
    const pending = Array.from({ length: 10 }, (_, i) => c.request({ t: 'put', tablet: 0, row: `r${i}`, col: 'c', value }));
    const sizes: number[] = [];
    let frames = 0;
    while (frames < 10) {
      const [identity, ...parts] = await router.receive();
      const got = framesOf(parts, max) as Frame[];
      sizes.push(got.length);
      expect(parts.reduce((sum, p) => sum + p.length, 0)).toBeLessThanOrEqual(max + 1 + 4 * got.length); // the bundle's own bytes
      frames += got.length;
      await router.send([identity!, ...got.map((f) => encodeFrame(f.id, { t: 'ok' }))]);
    }
    expect(sizes.every((n) => n <= 3)).toBe(true);
    expect(await Promise.all(pending)).toEqual(Array.from({ length: 10 }, () => ({ t: 'ok' })));
  });

  it('sends byte strings of 64 KiB and more as parts of their own after their frame, both ways', async () => {
    const big = Buffer.alloc(200 << 10);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const s = await server(28008, (req, respond) => {
      if (req.t === 'put') respond({ t: 'value', value: req.value });
      else echoRow(req, respond);
    });
    // Through the client: a big value out and back, next to small requests in the same message.
    const c = client(28008);
    const [echoed, small] = await Promise.all([c.request({ t: 'put', tablet: 0, row: 'r', col: 'c', value: big }), c.request(get('small'))]);
    expect(echoed.t === 'value' && Buffer.from(echoed.value).equals(big)).toBe(true);
    expect(small).toEqual({ t: 'cols', cols: ['small'] });
    // On the wire: [frame, attachment] for the big one, the frame itself small; a lone frame for the other.
    const out = encodeFrameParts(1, { t: 'put', tablet: 0, row: 'r', col: 'c', value: big });
    expect(out.length).toBe(2);
    expect(out[0]!.length).toBeLessThan(100);
    expect(out[1]).toBe(big); // sent from the caller's buffer, not copied
    expect(encodeFrameParts(2, { t: 'put', tablet: 0, row: 'r', col: 'c', value: big.subarray(0, ATTACH_BYTES - 1) }).length).toBe(1);
    const d = dealer(28008);
    await d.send([...out, encodeFrame(2, get('after'))]);
    const { frames } = await readFrames(d, 2);
    const body = frames[0]!.body as { value: Uint8Array };
    expect(Buffer.from(body.value).equals(big)).toBe(true);
    expect(frames[1]!.body).toEqual({ t: 'cols', cols: ['after'] });
    expect(s.stats).toMatchObject({ malformed: 0, oversized: 0 });
  });

  it('answers a frame whose attachments are missing or too big with an error, and goes on serving', async () => {
    const s = await server(28009, echoRow, 256 << 10);
    const d = dealer(28009);
    // The tag of attachment 0 around a value, but no part after the frame.
    const lying = Buffer.from(encodeFrame(1, { t: 'put', tablet: 0, row: 'r', col: 'c', value: Buffer.alloc(3) }));
    const at = lying.indexOf(Buffer.from([0x43, 0, 0, 0])); // the byte string header of the 3-byte value
    const tagged = Buffer.concat([lying.subarray(0, at), Buffer.from([0xd9, ATTACHMENT_TAG >> 8, ATTACHMENT_TAG & 0xff, 0x00]), lying.subarray(at + 4)]);
    await d.send(tagged);
    // A frame with attachments beyond maxMessageBytes (each part alone is within it).
    await d.send([...encodeFrameParts(2, { t: 'put', tablet: 0, row: 'r', col: 'c', value: Buffer.alloc(300 << 10) } as never), encodeFrame(3, get('three'))]);
    const { frames } = await readFrames(d, 3);
    expect(frames.map((f) => [f.id, (f.body as { t: string; code?: string }).code ?? (f.body as { t: string }).t])).toEqual([
      [0, 'bad_request'],
      [2, 'too_big'],
      [3, 'cols'],
    ]);
    expect(s.stats).toMatchObject({ malformed: 1, oversized: 1 });
    expect(await client(28009, 256 << 10).request(get('still'))).toEqual({ t: 'cols', cols: ['still'] });
  });

  it('reads bundles of frames with their attachments, and answers a broken or hand-made huge bundle boundedly', async () => {
    const s = await server(28010, (req, respond) => {
      if (req.t === 'put') respond({ t: 'value', value: req.value });
      else echoRow(req, respond);
    });
    const d = dealer(28010);
    const big1 = Buffer.alloc(100 << 10, 1);
    const big2 = Buffer.alloc(70 << 10, 2);
    // [bundle of (put+att, get, put+att), att1, att2, lone get]
    const msg = [
      ...messageParts([encodeFrameParts(1, { t: 'put', tablet: 0, row: 'a', col: 'c', value: big1 }), encodeFrameParts(2, get('two')), encodeFrameParts(3, { t: 'put', tablet: 0, row: 'b', col: 'c', value: big2 })]),
      encodeFrame(4, get('four')),
    ];
    expect(msg.length).toBe(4);
    await d.send(msg);
    const { frames } = await readFrames(d, 4);
    expect(frames.map((f) => f.id)).toEqual([1, 2, 3, 4]);
    expect(Buffer.from((frames[0]!.body as { value: Uint8Array }).value).equals(big1)).toBe(true);
    expect(frames[1]!.body).toEqual({ t: 'cols', cols: ['two'] });
    expect(Buffer.from((frames[2]!.body as { value: Uint8Array }).value).equals(big2)).toBe(true);
    // Lengths that run past the bundle, and an empty frame: one bad_request each, nothing executed after.
    const good = encodeFrame(5, get('five'));
    const broken = Buffer.concat([Buffer.from([0, good.length, 0, 0, 0]), good, Buffer.from([0xff, 0xff, 0, 0, 1, 2, 3])]);
    const empty = Buffer.from([0, 0, 0, 0, 0]);
    await d.send([broken, empty, encodeFrame(6, get('six'))]);
    const after = await readFrames(d, 4);
    expect(after.frames.map((f) => [f.id, (f.body as { t: string; code?: string }).code ?? (f.body as { cols: string[] }).cols[0]])).toEqual([
      [5, 'five'],
      [0, 'bad_request'],
      [0, 'bad_request'],
      [6, 'six'],
    ]);
    // 5000 one-byte frames in one bundle (CBOR 0x00 is not a frame): 512 answered, the rest dropped.
    const many = Buffer.concat([Buffer.from([0]), ...Array.from({ length: 5000 }, () => Buffer.from([1, 0, 0, 0, 0]))]);
    await d.send([many]);
    const flood = await readFrames(d, 2 * MAX_FRAMES_PER_MESSAGE);
    expect(flood.frames.length).toBe(2 * MAX_FRAMES_PER_MESSAGE);
    expect(await client(28010).request(get('still'))).toEqual({ t: 'cols', cols: ['still'] });
    expect(s.stats.malformed).toBe(2 + MAX_FRAMES_PER_MESSAGE);
  });

  it('fails a batch that cannot be sent as not sent, after connectWaitMs', async () => {
    const c = client(28090, 1 << 20, 50); // nobody listens there
    const started = Date.now();
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => c.request(get(`r${i}`) as Request)));
    expect(Date.now() - started).toBeLessThan(2000);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const e = (r as PromiseRejectedResult).reason as RpcError;
      expect(e).toBeInstanceOf(RpcError);
      expect(e.kind).toBe('unreachable');
      expect(e.notSent).toBe(true);
    }
  });
});
