// Drives one centrifuge-js session over an emulation transport and prints events as
// JSON lines on stdout (tests/integration/test_node_sdk.py reads them).
//
// usage: node session.mjs <base-url> <http_stream|sse> <json|protobuf> <token> <channel>
// stdin: one line per action the test asks for ("publish", "presence", "disconnect").
import EventSource from 'eventsource';
import * as readline from 'node:readline';

const [base, transport, format, token, channel] = process.argv.slice(2);
const mod = format === 'protobuf'
  ? await import('centrifuge/build/protobuf')
  : await import('centrifuge');
const { Centrifuge } = mod;

const decode = (data) => (format === 'protobuf' ? JSON.parse(new TextDecoder().decode(data)) : data);
const encode = (obj) => (format === 'protobuf' ? new TextEncoder().encode(JSON.stringify(obj)) : obj);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const endpoint = `${base}/connection/${transport}`;
const client = new Centrifuge([{ transport, endpoint }], {
  token: token === '-' ? '' : token,
  emulationEndpoint: `${base}/emulation`,
  eventsource: EventSource,
  fetch,
  minReconnectDelay: 100,
  maxReconnectDelay: 200,
});

client.on('connected', (ctx) => out({ event: 'connected', transport: ctx.transport, client: ctx.client }));
client.on('disconnected', (ctx) => { out({ event: 'disconnected', code: ctx.code }); });
client.on('error', (ctx) => out({ event: 'error', message: String(ctx.error && ctx.error.message) }));
client.on('publication', (ctx) => out({ event: 'server_publication', channel: ctx.channel, data: decode(ctx.data) }));

const sub = client.newSubscription(channel);
sub.on('subscribed', (ctx) => out({ event: 'subscribed', channel: ctx.channel, recoverable: ctx.recoverable }));
sub.on('publication', (ctx) => out({ event: 'publication', data: decode(ctx.data), offset: ctx.offset }));
sub.on('error', (ctx) => out({ event: 'sub_error', message: String(ctx.error && ctx.error.message) }));
sub.subscribe();
client.connect();


const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  try {
    if (line === 'publish') {
      await sub.publish(encode({ from: 'node' }));
      out({ event: 'published' });
    } else if (line === 'presence') {
      const res = await sub.presence();
      out({ event: 'presence', clients: Object.keys(res.clients).length });
    } else if (line === 'rpc-history') {
      const res = await sub.history({ limit: 10 });
      out({ event: 'history', count: res.publications.length, data: res.publications.map((p) => decode(p.data)) });
    } else if (line === 'disconnect') {
      client.disconnect();
      out({ event: 'done' });
      setTimeout(() => process.exit(0), 50);
    }
  } catch (err) {
    out({ event: 'call_error', message: String(err && (err.message || err.code)) });
  }
});
rl.on('close', () => process.exit(0));

