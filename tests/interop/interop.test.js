// interop.test.js — dealsignal's outputs as a Node.js consumer sees them:
// kafkajs reads every output topic from the embedded broker and
// @kafkajs/confluent-schema-registry decodes each record through the
// registry by the id it carries (avsc underneath), as a dashboard team
// would.  The records must be the ones dealsignal's own decoder reads
// (`dealsignal tail --json --schema-registry`), and the ids the ones
// registered under <topic>-value.
//
// Everything runs on loopback and is started here: `dealsignal broker`,
// redis-server, `ds_test_registry` (the Confluent-compatible test
// registry), `dealsignal run` (scorer and watcher) and `dealsignal gen`.
//   npm ci && node --test --test-force-exit
// (DS_BUILD: the build directory, default ../../build; kafkajs leaves
// timers behind after disconnecting, hence --test-force-exit)
'use strict';
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { Kafka, logLevel } = require('kafkajs');
const { SchemaRegistry } = require('@kafkajs/confluent-schema-registry');

const build = path.resolve(process.env.DS_BUILD || path.join(__dirname, '..', '..', 'build'));
const DS = path.join(build, 'dealsignal');
const REGISTRY = path.join(build, 'ds_test_registry');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ds-interop-'));
const children = [];

after(async () => {
  for (const c of children.reverse()) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM');
      await Promise.race([new Promise((r) => c.once('exit', r)), sleep(10000)]);
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Start a process; its stderr (and stdout unless firstLine) go to a log.
function start(name, cmd, args, { firstLine = false, stdin = 'ignore' } = {}) {
  const log = fs.openSync(path.join(tmp, `${name}.log`), 'a');
  const c = spawn(cmd, args, { stdio: [stdin, firstLine ? 'pipe' : log, log] });
  children.push(c);
  if (!firstLine) return { child: c };
  const line = new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: c.stdout });
    rl.once('line', (l) => resolve(l.trim()));
    c.once('exit', (code) => reject(new Error(`${name} exited ${code} before its first line`)));
  });
  return { child: c, line };
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(cmd)} ${args[0]}: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

async function httpGet(url) {
  try {
    const r = await fetch(url);
    return { status: r.status, body: await r.text() };
  } catch {
    return { status: 0, body: '' };
  }
}

async function until(what, fn, timeoutMs) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

// Numbers as `tail --json` prints doubles (%.6g); everything else as is.
function normalize(v) {
  if (typeof v === 'number') return Number(v.toPrecision(6));
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = normalize(v[k]);
    return o;
  }
  return v;
}

const canon = (r) => JSON.stringify(normalize(r));

test('kafkajs + @kafkajs/confluent-schema-registry decode every output topic', async () => {
  for (const f of [DS, REGISTRY])
    assert.ok(fs.existsSync(f), `${f} is missing: build first (cmake --build build)`);
  // the registry lives as long as its stdin pipe: it never outlives us
  const reg = start('registry', REGISTRY, [], { firstLine: true, stdin: 'pipe' });
  const broker = start('broker', DS, ['broker', '--partitions', '2'], { firstLine: true });
  const redisPort = await freePort();
  start('redis', 'redis-server', ['--port', String(redisPort), '--save', '', '--appendonly',
    'no', '--bind', '127.0.0.1']);
  const registryUrl = await reg.line;
  const brokers = await broker.line;
  const metrics = `127.0.0.1:${await freePort()}`;
  const common = ['--brokers', brokers, '--schema-registry', registryUrl];
  await until('redis', async () => {
    return new Promise((r) => {
      const s = net.connect(redisPort, '127.0.0.1', () => { s.end(); r(true); });
      s.on('error', () => r(false));
    });
  }, 10000);

  const worker = start('run', DS, ['run', ...common, '--redis', `redis://127.0.0.1:${redisPort}/0`,
    '--group-id', 'interop', '--clock', 'event', '--metrics-addr', metrics]);
  await until('/readyz', async () => (await httpGet(`http://${metrics}/readyz`)).status === 200,
    30000);
  const gen = await run(DS, ['gen', ...common, '--count', '800', '--accounts', '10']);
  const m = /produced (\d+) marketing \+ (\d+) crm/.exec(gen.stderr);
  assert.ok(m, gen.stderr);
  const produced = Number(m[1]) + Number(m[2]);
  // every input consumed (state written, outputs acknowledged, offsets stored)
  await until('the workers to consume the input', async () => {
    const { body } = await httpGet(`http://${metrics}/metrics`);
    const sum = body.split('\n').filter((l) => l.startsWith('dealsignal_consumed_records_total{'))
      .reduce((a, l) => a + Number(l.split(' ').pop()), 0);
    return sum >= produced;
  }, 60000);
  worker.child.kill('SIGTERM');
  await new Promise((r) => worker.child.once('exit', r));
  assert.equal(worker.child.exitCode, 0);

  const registry = new SchemaRegistry({ host: registryUrl });
  const kafka = new Kafka({ clientId: 'interop', brokers: [brokers], logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  const topics = { 'lead.scores': 'LeadScore', 'account.scores': 'AccountScore',
    'deal.alerts': 'DealAlert' };
  const want = {};
  let total = 0;
  for (const t of Object.keys(topics)) {
    const offs = await admin.fetchTopicOffsets(t);
    want[t] = offs.reduce((a, p) => a + Number(p.high) - Number(p.low), 0);
    total += want[t];
  }
  await admin.disconnect();
  const ids = {};
  for (const t of Object.keys(topics)) ids[t] = await registry.getLatestSchemaId(`${t}-value`);

  const seen = { 'lead.scores': [], 'account.scores': [], 'deal.alerts': [] };
  let got = 0;
  const consumer = kafka.consumer({ groupId: 'interop-reader', sessionTimeout: 10000 });
  await consumer.connect();
  await consumer.subscribe({ topics: Object.keys(topics), fromBeginning: true });
  let failure = null;
  await consumer.run({
    eachMessage: async ({ topic, message }) => {
      try {
        assert.equal(message.value[0], 0, 'magic byte');
        assert.equal(message.value.readInt32BE(1), ids[topic], `schema id on ${topic}`);
        seen[topic].push(await registry.decode(message.value));
      } catch (e) {
        failure = failure || e;
      }
      got++;
    },
  });
  await until(`${total} output records`, async () => failure || got >= total, 60000);
  await consumer.disconnect();
  if (failure) throw failure;

  for (const [t, record] of Object.entries(topics)) {
    assert.ok(ids[t] > 5, `${t}: the registry's id, not the embedded one`);
    assert.ok(seen[t].length > 0, `${t} has records`);
    assert.equal(seen[t].length, want[t]);
    // dealsignal's own decoding of the same records
    const max = record === 'DealAlert' ? want['deal.alerts']
      : want['lead.scores'] + want['account.scores'];
    const args = ['tail', record === 'DealAlert' ? 'alerts' : 'scores', '--from-beginning',
      '--json', '--max', String(max), '--timeout-ms', '15000', ...common];
    const { stdout } = await run(DS, args);
    const own = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l))
      .filter((r) => r.type === record)
      .map(({ type, ...rest }) => rest); // eslint-disable-line no-unused-vars
    assert.equal(own.length, seen[t].length, `${t}: as many records as dealsignal reads`);
    assert.deepEqual(seen[t].map(canon).sort(), own.map(canon).sort(), `${t}: same records`);
    console.log(`# ${t}: ${seen[t].length} ${record} records, schema id ${ids[t]}, ` +
      'identical to dealsignal\'s own reading');
  }
});
