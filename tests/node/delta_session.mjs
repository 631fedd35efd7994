// One centrifuge-js client over WebSocket (the `ws` package, which offers
// permessage-deflate) subscribed with delta: 'fossil'; prints events as JSON lines
// (tests/integration/test_delta_deflate.py reads them).
//
// usage: node delta_session.mjs <ws-url> <json|protobuf> <token> <channel>
import WebSocket from 'ws';

const [url, format, token, channel] = process.argv.slice(2);
const mod = format === 'protobuf'
  ? await import('centrifuge/build/protobuf')
  : await import('centrifuge');
const { Centrifuge } = mod;
const decode = (data) => (format === 'protobuf' ? JSON.parse(new TextDecoder().decode(data)) : data);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const client = new Centrifuge(url, { token, websocket: WebSocket });
client.on('error', (ctx) => out({ event: 'error', message: String(ctx.error && ctx.error.message) }));
const sub = client.newSubscription(channel, { delta: 'fossil' });
sub.on('subscribed', (ctx) => out({ event: 'subscribed', channel: ctx.channel, positioned: ctx.positioned }));
sub.on('publication', (ctx) => out({ event: 'publication', data: decode(ctx.data), offset: ctx.offset }));
sub.on('error', (ctx) => out({ event: 'sub_error', message: String(ctx.error && ctx.error.message) }));
sub.subscribe();
client.connect();
process.stdin.on('end', () => { client.disconnect(); process.exit(0); });
process.stdin.resume();
