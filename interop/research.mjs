// docs/protocol.md's research route against a running gatekeeper that holds its holder's key:
// a researcher's study approved (a minimum cell of 5, within governance's floor), thirteen
// patients' records uploaded (demographics and a condition each) and ten of them opted in, each
// as its study pseudonym (HKDF-SHA256 of the patient's key, derived here with node's crypto and
// checked against medrec-protocol's pinned vector) with a slot for the holder (ECDH with the
// service key the gatekeeper serves, checked against the one registered on chain, HKDF and
// AES-256-GCM of the patient's StudyMembership signature, all node's crypto), signed by the
// pseudonym and sent by a relayer; no OptedIn names a patient; a noised condition-count query naming its holder and its
// epsilon, signed as a ResearchRequest; the answer's signature recovered from keccak256 of its
// exact text (no EIP-191 prefix), its epsilon (the query's over its one holder), every one of
// the 20 cells of age band by sex in order, each a count at or over the minimum or held back
// (a cell of 2 held back like an empty one, a large cell within a few of its true count, the
// patients not opted in not counted); the same query answered again alike; another query
// refused with 409 unrecorded_answer until the receipt is on chain; the receipts' costs as the
// document's formula gives them, and a query past the budget refused.
//
// Usage: node research.mjs <rpc-url> <deployments/<chainId>.json> <gatekeeper-url>
// The gatekeeper must serve for anvil's account 2 with that account's keystore
// (--anchor-keystore); run.sh starts one when DATABASE_URL is set.
import crypto from "node:crypto";
import { hashTypedData, keccak256, parseEventLogs, recoverAddress, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import {
  GATEKEEPER_TYPES,
  OPT_IN_TYPES,
  ROLE,
  anvilAccounts,
  checker,
  connect,
  randomNonce,
  seconds,
  upload,
} from "./lib.mjs";

const [rpcUrl, deploymentFile, gatekeeperUrl] = process.argv.slice(2);
if (!rpcUrl || !deploymentFile || !gatekeeperUrl) {
  console.error("usage: node research.mjs <rpc-url> <deployments/<chainId>.json> <gatekeeper-url>");
  process.exit(2);
}
const { check, eq, done } = checker();
const chain = await connect(rpcUrl, deploymentFile, { check, eq });
const { deployment, client, abis } = chain;
const studies = deployment.studyRegistry;
const [governance, relayer, holder, researcher] = anvilAccounts;
const gatekeeperDomain = await chain.domainOf(deployment.recordRegistry);
const studyDomain = await chain.domainOf(studies);
eq("study domain name", studyDomain.name, "medrec.StudyRegistry");

// ---- Issue 16: a patient takes part in a study as a pseudonym derived from their key
// (docs/protocol.md, "Study pseudonyms and holder slots"), never as themselves.
const u64 = (n) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};
const bytes = (hex) => Buffer.from(hex.slice(2), "hex");
const chainId = BigInt(studyDomain.chainId);
function studyPseudonym(secretHex, chain, registry, study) {
  for (let counter = 0; counter < 256; counter++) {
    const info = Buffer.concat([
      Buffer.from("medrec.pseudonym.v1"),
      Buffer.from([0]),
      Buffer.from(`study/${study}`),
      Buffer.from([0]),
      u64(chain),
      bytes(registry),
      Buffer.from([counter]),
    ]);
    const key = Buffer.from(crypto.hkdfSync("sha256", bytes(secretHex), Buffer.alloc(0), info, 32));
    try {
      return privateKeyToAccount(`0x${key.toString("hex")}`);
    } catch {
      // Not a secp256k1 key (about 2^-128): the next counter.
    }
  }
  throw new Error("no key");
}
eq(
  "pseudonym: medrec-protocol's pinned vector",
  studyPseudonym(`0x${"42".repeat(32)}`, 31337n, `0x${"aa".repeat(20)}`, 1n).address,
  "0x16c72fEb15F6bDd0e1B97A25F7a6b425eE905087",
);
/** A study message's issue time and deadline, as medrec-protocol's study_signed_times: the
 * chain's latest block time rounded down to the minute, after the last signed time, and one
 * window of a day (no clock of the signer's shows). */
function studyTimes(latest, signedAt) {
  let issuedAt = latest - (latest % 60n);
  if (issuedAt <= signedAt) issuedAt = signedAt + 1n;
  return { issuedAt, deadline: issuedAt + 86400n };
}
const TAG_SLOTS = 8;
const SLOT_LEN = 82;
/** The patient's membership proof for a holder (medrec-protocol's membership_proof): the
 * patient's compressed public key, then HMAC-SHA256 keyed by ECDH(patient, holder's service
 * key) over the label, the holder and the StudyMembership hash; the holder could make it too. */
function membershipProof(patientKeyHex, holder, publicKey, membershipHash) {
  const patient = crypto.createECDH("secp256k1");
  patient.setPrivateKey(bytes(patientKeyHex));
  const x = patient.computeSecret(bytes(publicKey));
  const mac = crypto
    .createHmac("sha256", x)
    .update(Buffer.concat([Buffer.from("medrec.study-membership.v1"), bytes(holder), bytes(membershipHash)]))
    .digest();
  return Buffer.concat([patient.getPublicKey(null, "compressed"), mac]);
}
/** An opt-in's tags: the ephemeral key, then 8 slots, one per holder (view tag, AES-256-GCM of
 * the patient's membership proof under a key bound to the holder and its service key), random
 * elsewhere (never with a used view tag). `holders`: [{ holder, publicKey }]. */
function studyTags(study, pseudonym, patientKeyHex, membershipHash, holders) {
  const ephemeral = crypto.createECDH("secp256k1");
  ephemeral.generateKeys();
  const ephPub = ephemeral.getPublicKey(null, "compressed");
  const tags = Buffer.concat([ephPub, crypto.randomBytes(TAG_SLOTS * SLOT_LEN)]);
  // The used slots at random positions (Fisher-Yates).
  const slots = [...Array(TAG_SLOTS).keys()];
  for (let i = TAG_SLOTS - 1; i > 0; i--) {
    const j = crypto.randomInt(i + 1);
    [slots[i], slots[j]] = [slots[j], slots[i]];
  }
  const views = [];
  holders.forEach(({ holder, publicKey }, i) => {
    const shared = ephemeral.computeSecret(bytes(publicKey)); // the x coordinate
    const compressed = crypto.ECDH.convertKey(bytes(publicKey), "secp256k1", undefined, undefined, "compressed");
    const info = Buffer.concat([
      Buffer.from("medrec.study-tag.v1"),
      u64(chainId),
      bytes(studies),
      bytes(toHex(study, { size: 32 })),
      bytes(pseudonym),
      bytes(holder),
      compressed,
    ]);
    const okm = Buffer.from(crypto.hkdfSync("sha256", shared, ephPub, info, 45));
    const cipher = crypto.createCipheriv("aes-256-gcm", okm.subarray(1, 33), okm.subarray(33));
    const proof = membershipProof(patientKeyHex, holder, publicKey, membershipHash);
    const ct = Buffer.concat([cipher.update(proof), cipher.final(), cipher.getAuthTag()]);
    const at = 33 + slots[i] * SLOT_LEN;
    tags[at] = okm[0];
    views.push(okm[0]);
    ct.copy(tags, at + 1);
  });
  for (const slot of slots.slice(holders.length)) {
    const at = 33 + slot * SLOT_LEN;
    while (views.includes(tags[at])) tags[at] = crypto.randomInt(256);
  }
  return toHex(tags);
}
const MEMBERSHIP_TYPES = {
  StudyMembership: [
    { name: "studyId", type: "uint256" },
    { name: "pseudonym", type: "address" },
  ],
};

// ---- A study of demographics and conditions: cells under 5 held back, a budget of ten
// epsilon (the governance defaults' floor and ceiling).
const DEMOGRAPHICS = 0;
const CONDITIONS = 5;
const MIN_CELL = 5;
const BUDGET = 10_000_000n;
await chain.credential(researcher.address, ROLE.researcher);
await chain.send(researcher, studies, abis.studies, "registerStudy", [
  keccak256(toHex("protocol")),
  (1n << BigInt(DEMOGRAPHICS)) | (1n << BigInt(CONDITIONS)),
  MIN_CELL,
  BUDGET,
]);
const studyId = await client.readContract({ address: studies, abi: abis.studies, functionName: "studyCount" });
await chain.send(governance, studies, abis.studies, "approveStudy", [studyId]);

// ---- Thirteen diabetic patients at the holder, each a Patient record (demographics) and a
// Condition record: eight women of 40-64 and two men of 65+ opt in by signature; three more
// women of 40-64 do not.
const DIABETES = "44054006";
const record = (resource) => new TextEncoder().encode(JSON.stringify(resource));
const condition = {
  resourceType: "Condition",
  code: { coding: [{ system: "http://snomed.info/sct", code: DIABETES }] },
};
const patients = [
  ...Array(8).fill(["female", "1970-05-01", true]),
  ...Array(2).fill(["male", "1950-01-01", true]),
  ...Array(3).fill(["female", "1972-03-03", false]),
].map(([gender, birthDate, optsIn]) => {
  const key = generatePrivateKey();
  return { key, account: privateKeyToAccount(key), gender, birthDate, optsIn };
});
for (const p of patients) {
  for (const [category, resource] of [
    [DEMOGRAPHICS, { resourceType: "Patient", gender: p.gender, birthDate: p.birthDate }],
    [CONDITIONS, condition],
  ]) {
    const { response } = await upload(
      gatekeeperUrl,
      gatekeeperDomain,
      holder,
      p.account.address,
      category,
      record(resource),
    );
    eq(`upload of a ${p.gender} patient's ${resource.resourceType}: 201`, response.status, 201);
  }
}
// The holder registers its gatekeeper; its service key is its own key here. Patients encrypt
// their slot to the key the gatekeeper serves only if it hashes to the registered one.
await chain.send(holder, deployment.recordRegistry, abis.records, "registerHolder", [
  gatekeeperUrl,
  holder.address,
]);
const served = await (await fetch(`${gatekeeperUrl}/v1/service-key`)).json();
const registered = await client.readContract({
  address: deployment.recordRegistry,
  abi: abis.records,
  functionName: "gatekeeperOf",
  args: [holder.address],
});
const servedAddress = `0x${keccak256(
  toHex(crypto.ECDH.convertKey(bytes(served.publicKey), "secp256k1", undefined, undefined, "uncompressed").subarray(1)),
).slice(-40)}`;
eq("the served service key is the registered one", servedAddress.toLowerCase(), registered.serviceKey.toLowerCase());
const optIns = [];
for (const p of patients.filter((p) => p.optsIn)) {
  const pseudonym = studyPseudonym(p.key, chainId, studies, studyId);
  // The participation's epoch and last signed time order signed messages (not a nonce).
  const slot = await client.readContract({
    address: studies,
    abi: abis.studies,
    functionName: "participationOf",
    args: [studyId, pseudonym.address],
  });
  const membershipHash = hashTypedData({
    domain: studyDomain,
    types: MEMBERSHIP_TYPES,
    primaryType: "StudyMembership",
    message: { studyId, pseudonym: pseudonym.address },
  });
  const message = {
    studyId,
    pseudonym: pseudonym.address,
    tags: studyTags(studyId, pseudonym.address, p.key, membershipHash, [
      { holder: holder.address, publicKey: served.publicKey },
    ]),
    epoch: slot.epoch,
    ...studyTimes(await chain.now(), BigInt(slot.signedAt)),
  };
  const signature = await pseudonym.signTypedData({
    domain: studyDomain,
    types: OPT_IN_TYPES,
    primaryType: "OptIn",
    message,
  });
  optIns.push(
    await chain.send(relayer, studies, abis.studies, "optInBySig", [
      message.studyId,
      message.pseudonym,
      message.tags,
      message.epoch,
      message.issuedAt,
      message.deadline,
      signature,
    ]),
  );
}
const named = new Set(patients.map((p) => p.account.address.toLowerCase()));
const opted = optIns.flatMap((r) => parseEventLogs({ abi: abis.studies, logs: r.logs, eventName: "OptedIn" }));
eq("ten OptedIn events", opted.length, 10);
check(
  "no OptedIn names a patient",
  opted.every((e) => !named.has(e.args.pseudonym.toLowerCase()) && Object.keys(e.args).join() === "studyId,pseudonym,tags"),
  JSON.stringify(opted.map((e) => e.args.pseudonym)),
);
// Uncached: viem keeps eth_blockNumber for its polling interval, which may predate the opt-ins.
const pinnedBlock = Number(await client.getBlockNumber({ cacheTime: 0 }));

// ---- A query, signed as a ResearchRequest addressed to the holder.
async function ask(query) {
  const text = JSON.stringify(query);
  const issuedAt = seconds();
  const request = {
    researcher: researcher.address,
    studyId,
    queryHash: keccak256(toHex(text)),
    audience: holder.address,
    nonce: randomNonce(),
    issuedAt,
    expiresAt: issuedAt + 120,
  };
  const signature = await researcher.signTypedData({
    domain: gatekeeperDomain,
    types: GATEKEEPER_TYPES,
    primaryType: "ResearchRequest",
    message: request,
  });
  const response = await fetch(`${gatekeeperUrl}/v1/research/query`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      request: { ...request, studyId: toHex(studyId), nonce: toHex(request.nonce) },
      query: text,
      signature,
    }),
  });
  return { response, queryHash: request.queryHash };
}

// The query names its holders (ascending; one here) and its epsilon: the holder noises at
// epsilon over the number of holders. Eight of ten epsilon: the noise is small enough that the
// checks below hold but for a chance far under one in a million.
const EPSILON = 8;
const count = {
  kind: "condition-count",
  system: "http://snomed.info/sct",
  code: DIABETES,
  epsilon: EPSILON,
  holders: [holder.address],
  pinnedBlock,
};
const cost = (epsilon) => BigInt(Math.max(1, Math.ceil(epsilon * 1e6))); // micro-epsilon
const first = await ask(count);
eq("query: 200", first.response.status, 200);
if (first.response.status !== 200) {
  console.error(`interop: the holder answered ${await first.response.text()}`);
  done("");
}
const { answer, signature } = await first.response.json();
eq(
  "the answer is signed by the holder over keccak256 of its text",
  (await recoverAddress({ hash: keccak256(toHex(answer)), signature })).toLowerCase(),
  holder.address.toLowerCase(),
);
const parsed = JSON.parse(answer);
eq("answer: holder", parsed.holder.toLowerCase(), holder.address.toLowerCase());
eq("answer: queryHash", parsed.queryHash, first.queryHash);
eq("answer: studyId", BigInt(parsed.studyId), studyId);
eq("answer: pinnedBlock", parsed.pinnedBlock, pinnedBlock);
eq("answer: minCellSize", parsed.minCellSize, MIN_CELL);
// The holder's share: the query's cost in micro-epsilon over 10^6 times the holders.
eq(
  "answer: epsilon, the query's over its one holder",
  parsed.epsilon,
  Number(cost(EPSILON)) / (1e6 * count.holders.length),
);
const AGE_BANDS = ["0-17", "18-39", "40-64", "65+", "unknown"];
const SEXES = ["female", "male", "other", "unknown"];
const domain = AGE_BANDS.flatMap((band) => SEXES.map((sex) => `${band}/${sex}`));
const cells = parsed.result.cells ?? [];
eq(
  "answer: every cell of age band by sex, once, in order",
  cells.map((c) => `${c.ageBand}/${c.sex}`).join(","),
  domain.join(","),
);
check(
  "answer: each cell a noised count at or over the minimum, or held back",
  cells.every((c) =>
    c.suppressed === true
      ? c.count === undefined
      : Number.isInteger(c.count) && c.count >= MIN_CELL && !c.suppressed,
  ),
  JSON.stringify(cells),
);
const cellOf = (band, sex) => cells.find((c) => c.ageBand === band && c.sex === sex) ?? {};
const women = cellOf("40-64", "female");
// Eight opted in; the three who did not would make it eleven.
check(
  "answer: 40-64 women shown, within 2 of the 8 opted in",
  Math.abs((women.count ?? -99) - 8) <= 2,
  JSON.stringify(women),
);
eq("answer: 65+ men (2 opted in) held back", cellOf("65+", "male").suppressed, true);
eq("answer: an empty cell held back alike", cellOf("0-17", "female").suppressed, true);
const again = await ask(count);
eq("the same query again: the same answer", (await again.response.json()).answer, answer);

const other = { ...count, epsilon: 1 };
const early = await ask(other);
eq("another query before the receipt: 409", early.response.status, 409);
eq("  code unrecorded_answer", (await early.response.json()).error.code, "unrecorded_answer");

// ---- The receipts: each pays max(1, ceil(epsilon × 10^6)) of the budget.
await chain.send(researcher, studies, abis.studies, "recordQuery", [
  studyId,
  first.queryHash,
  cost(EPSILON),
  BigInt(pinnedBlock),
  keccak256(toHex(answer)),
]);
const later = await ask(other);
eq("the other query once the receipt is on chain: 200", later.response.status, 200);
await chain.send(researcher, studies, abis.studies, "recordQuery", [
  studyId,
  later.queryHash,
  cost(other.epsilon),
  BigInt(pinnedBlock),
  keccak256(toHex((await later.response.json()).answer)),
]);
const study = await client.readContract({ address: studies, abi: abis.studies, functionName: "studyOf", args: [studyId] });
eq("the study's budget spent: 8,000,000 + 1,000,000", study.spent, cost(EPSILON) + cost(other.epsilon));
const tooDear = await ask({ ...count, epsilon: 1.5 });
eq("a query that costs more than the budget left: 403", tooDear.response.status, 403);
eq("  code budget_exhausted", (await tooDear.response.json()).error.code, "budget_exhausted");

done("viem asks a research query, verifies the holder's signed answer and records its receipt");
