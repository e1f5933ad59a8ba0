// A downstream consumer in another language, written from docs/events.md ("Consuming from
// another language") and nothing else: it keeps its own position, repositions its durable
// consumer at every start, and gets every event once, in order, across restarts.
//
// Its "database" is an append-only file of processed events (one JSON line each); the
// last line's position is its position, so effects and position are written together.
//
// Environment: NATS_URL, PREFIX (the subject prefix), DURABLE (the consumer's name),
// OUTPUT (the file), STORE_ID (the store to follow, from `programledger status`), UNTIL
// (exit 0 once this position is processed), CRASH_AFTER (optional: SIGKILL itself after
// processing this many events, with later messages fetched and not acknowledged).
import { appendFileSync, closeSync, existsSync, fsyncSync, openSync, readFileSync } from "node:fs";
import { AckPolicy, DeliverPolicy, connect, nanos } from "nats";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const prefix = env("PREFIX");
const durable = env("DURABLE");
const output = env("OUTPUT");
const storeId = env("STORE_ID");
const until = Number(env("UNTIL"));
const crashAfter = Number(env("CRASH_AFTER", "0"));

// "The stream": the prefix with dots and dashes as underscores, upper case, + _EVENTS.
const stream = `${prefix.replace(/[.-]/g, "_").toUpperCase()}_EVENTS`;

// 1. My position: the last position whose effects I committed (0 before the first).
function myPosition() {
  if (!existsSync(output)) return 0;
  const lines = readFileSync(output, "utf8").trim().split("\n").filter(Boolean);
  return lines.length ? JSON.parse(lines[lines.length - 1]).position : 0;
}

// My effects and my position, together: one line, flushed to disk before the ack.
function commit(envelope) {
  const line = JSON.stringify({
    position: envelope.position,
    event_id: envelope.event_id,
    event_type: envelope.event_type,
    stream_type: envelope.stream_type,
    program_id: envelope.program_id,
  });
  const fd = openSync(output, "a");
  try {
    appendFileSync(fd, `${line}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

const nc = await connect({ servers: env("NATS_URL") });
const jsm = await nc.jetstreamManager();
const js = nc.jetstream();

// 2. The stream must be my store's: its metadata (or, before nats-server 2.10, its
// description) names the store.
const info = await jsm.streams.info(stream);
const marked =
  info.config.metadata?.programledger_store_id ??
  /\(event store ([0-9a-f-]{36})\)/.exec(info.config.description ?? "")?.[1];
if (marked !== undefined && marked !== storeId) {
  console.error(`stream ${stream} belongs to store ${marked}, not ${storeId}`);
  process.exit(2);
}

// 3. The first stream sequence holding an event after my position: a binary search on
// the Programledger-Position header, valid because the stream is in position order.
async function positionAt(seq) {
  try {
    const msg = await jsm.streams.getMessage(stream, { seq });
    return Number(msg.header.get("Programledger-Position"));
  } catch {
    return -1; // gone: treat as before every position
  }
}
let last = myPosition();
const { first_seq: first, last_seq: lastSeq, messages } = info.state;
let start = lastSeq + 1;
if (messages > 0) {
  let low = first;
  let high = lastSeq + 1;
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    if ((await positionAt(middle)) > last) high = middle;
    else low = middle + 1;
  }
  start = low;
  if (start === first && (await positionAt(first)) > last + 1) {
    console.error(`events after position ${last} have expired from the stream`);
    process.exit(3);
  }
}

// 4. Reposition my durable there: delete it (whatever an earlier instance left
// unacknowledged goes with it) and create it again at that sequence.
try {
  await jsm.consumers.delete(stream, durable);
} catch {
  // it did not exist yet
}
await jsm.consumers.add(stream, {
  durable_name: durable,
  ack_policy: AckPolicy.Explicit,
  deliver_policy: DeliverPolicy.StartSequence,
  opt_start_seq: start,
  filter_subject: `${prefix}.>`,
  max_deliver: -1,
  ack_wait: nanos(30_000),
});
const consumer = await js.consumers.get(stream, durable);

// 5. Consume: skip (and ack) what is at or below my position, commit, then ack.
let processed = 0;
while (last < until) {
  const batch = await consumer.fetch({ max_messages: 10, expires: 1000 });
  for await (const msg of batch) {
    const header = msg.headers?.get("Programledger-Store-Id");
    if (header && header !== storeId) {
      console.error(`a message of store ${header} in ${stream}`);
      process.exit(2);
    }
    const envelope = msg.json();
    if (envelope.position <= last) {
      msg.ack();
      continue;
    }
    if (typeof envelope.data !== "object" || envelope.data === null) {
      throw new Error(`event ${envelope.event_id} has no data object`);
    }
    commit(envelope);
    last = envelope.position;
    await msg.ackAck();
    processed += 1;
    if (crashAfter && processed === crashAfter) {
      process.kill(process.pid, "SIGKILL");
    }
  }
}
await nc.drain();
