// Reads one JSON array of [sourceHex, targetHex, deltaHex] on stdin and writes, for each,
// [createDelta(source, target), applyDelta(source, delta)] in hex, computed by the npm
// fossil-delta package (the implementation the centrifuge JS SDK applies deltas with).
import { createDelta, applyDelta } from "fossil-delta";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const cases = JSON.parse(Buffer.concat(chunks).toString());
const hex = (bytes) => Buffer.from(bytes).toString("hex");
const out = cases.map(([s, t, d]) => {
  const source = Buffer.from(s, "hex");
  const target = Buffer.from(t, "hex");
  return [hex(createDelta(source, target)), hex(applyDelta(source, Buffer.from(d, "hex")))];
});
process.stdout.write(JSON.stringify(out));
