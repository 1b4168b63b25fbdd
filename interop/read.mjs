// docs/protocol.md's worked example 3 against a running gatekeeper: a holder uploads a record
// (an Upload signed with viem) and anchors its pointer; a provider the patient granted reads it
// with a RecordRequest signed over the domain read from RecordRegistry.eip712Domain() and checks
// the bytes against the chain; a replay and a stranger get the same 403; the patient reads the
// access log and recomputes its hash chain as the document says.
//
// Usage: node read.mjs <rpc-url> <deployments/<chainId>.json> <gatekeeper-url>
// The gatekeeper must serve for anvil's account 2 (--holder); run.sh starts one when
// DATABASE_URL is set.
import { concat, encodeAbiParameters, keccak256, sha256, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import {
  GATEKEEPER_TYPES,
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
  console.error("usage: node read.mjs <rpc-url> <deployments/<chainId>.json> <gatekeeper-url>");
  process.exit(2);
}
const { check, eq, done } = checker();
const chain = await connect(rpcUrl, deploymentFile, { check, eq });
const { deployment, client, abis } = chain;
const gatekeeperDomain = await chain.domainOf(deployment.recordRegistry);

const holder = anvilAccounts[2];
const requester = privateKeyToAccount(generatePrivateKey());
const stranger = privateKeyToAccount(generatePrivateKey());
const patient = privateKeyToAccount(generatePrivateKey());
const LABS = 3;
await chain.credential(holder.address, ROLE.provider);
await chain.credential(requester.address, ROLE.provider);
await chain.grantBySig(patient, holder.address, 1n << BigInt(LABS));
await chain.grantBySig(patient, requester.address, 1n << BigInt(LABS));

// ---- The holder stores a record at its gatekeeper and anchors its pointer.
const record = new TextEncoder().encode(
  JSON.stringify({
    resourceType: "Observation",
    status: "final",
    code: { coding: [{ system: "http://loinc.org", code: "4548-4" }] },
    valueQuantity: { value: 6.1, unit: "%" },
  }),
);
const { response: stored, contentHash } = await upload(
  gatekeeperUrl,
  gatekeeperDomain,
  holder,
  patient.address,
  LABS,
  record,
);
eq("upload: 201 Created", stored.status, 201);
const { recordId, commitment, opening } = await stored.json();
// Issue 16: the pointer carries a salted commitment to (patient, holder, category, content
// hash, salt); the gatekeeper chose the salt and keeps it with the record.
const commitmentOf = (category, hash, salt) =>
  keccak256(
    encodeAbiParameters(
      [{ type: "address" }, { type: "address" }, { type: "uint8" }, { type: "bytes32" }, { type: "bytes32" }],
      [patient.address, holder.address, category, hash, salt],
    ),
  );
eq("upload: the opening's category", opening.category, LABS);
eq("upload: the commitment opens with the opening", commitment, commitmentOf(LABS, contentHash, opening.salt));
eq(
  "the record id is keccak256(abi.encode(holder, patient, commitment))",
  recordId,
  keccak256(
    encodeAbiParameters(
      [{ type: "address" }, { type: "address" }, { type: "bytes32" }],
      [holder.address, patient.address, commitment],
    ),
  ),
);
await chain.send(holder, deployment.recordRegistry, abis.records, "anchor", [
  {
    recordId,
    patient: patient.address,
    commitment,
    locator: `${gatekeeperUrl}/v1/records/${recordId}`,
    supersedes: toHex(0n, { size: 32 }),
  },
]);

// ---- Example 3: the requester reads it, as docs/protocol.md shows.
async function signedRead(account) {
  const { holder: audience } = await (await fetch(`${gatekeeperUrl}/health`)).json();
  const issuedAt = seconds();
  const request = {
    requester: account.address,
    recordId,
    audience,
    nonce: randomNonce(),
    issuedAt,
    expiresAt: issuedAt + 60,
  };
  const signature = await account.signTypedData({
    domain: gatekeeperDomain,
    types: GATEKEEPER_TYPES,
    primaryType: "RecordRequest",
    message: request,
  });
  return JSON.stringify({ request: { ...request, nonce: toHex(request.nonce) }, signature });
}
const read = (body) =>
  fetch(`${gatekeeperUrl}/v1/records/${recordId}/read`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
const body = await signedRead(requester);
const answer = await read(body);
eq("read: 200", answer.status, 200);
eq("read: content-type", answer.headers.get("content-type"), "application/fhir+json");
const served = JSON.parse(answer.headers.get("x-medrec-opening"));
const bytes = new Uint8Array(await answer.arrayBuffer());
eq("read: sha256 of the bytes is the uploaded content hash", sha256(bytes), contentHash);
const [onChain] = await client.readContract({
  address: deployment.recordRegistry,
  abi: abis.records,
  functionName: "pointerOf",
  args: [recordId],
});
eq(
  "read: the bytes and the served opening open the commitment on chain",
  commitmentOf(served.category, sha256(bytes), served.salt),
  onChain,
);
const refusal = async (what, resp) => {
  eq(`${what}: 403`, resp.status, 403);
  eq(`${what}: code denied`, (await resp.json()).error.code, "denied");
};
await refusal("a replayed request", await read(body));
await refusal("a stranger's request", await read(await signedRead(stranger)));

// ---- The patient reads their page of the access log and checks each entry's inclusion proof
// in the log's Merkle tree (RFC 6962 hashing, RFC 9162 verification).
const issuedAt = seconds();
const logRequest = {
  patient: patient.address,
  audience: holder.address,
  nonce: randomNonce(),
  issuedAt,
  expiresAt: issuedAt + 60,
};
const logSignature = await patient.signTypedData({
  domain: gatekeeperDomain,
  types: GATEKEEPER_TYPES,
  primaryType: "LogRequest",
  message: logRequest,
});
const logAnswer = await fetch(`${gatekeeperUrl}/v1/log`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({
    request: { ...logRequest, nonce: toHex(logRequest.nonce) },
    signature: logSignature,
  }),
});
eq("access log: 200", logAnswer.status, 200);
const log = await logAnswer.json();
const entryType = [
  {
    type: "tuple",
    components: [
      { name: "index", type: "uint64" },
      { name: "atMs", type: "uint64" },
      { name: "requester", type: "address" },
      { name: "recordId", type: "bytes32" },
      { name: "patient", type: "address" },
      { name: "allowed", type: "bool" },
      { name: "reason", type: "string" },
      { name: "nonce", type: "bytes32" },
    ],
  },
];
const leafOf = (e) =>
  sha256(
    concat([
      "0x00",
      encodeAbiParameters(entryType, [
        [BigInt(e.index), BigInt(e.atMs), e.requester, e.recordId, e.patient, e.allowed, e.reason, e.nonce],
      ]),
    ]),
  );
const node = (left, right) => sha256(concat(["0x01", left, right]));
// RFC 9162 section 2.1.3.2.
function included(leaf, index, size, proof, root) {
  if (index >= size) return false;
  let [fn, sn, r] = [BigInt(index), BigInt(size) - 1n, leaf];
  for (const p of proof) {
    if (sn === 0n) return false;
    if (fn % 2n === 1n || fn === sn) {
      r = node(p, r);
      while (fn % 2n === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = node(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && r === root;
}
eq("access log: three entries (one allowed read, two refused)", log.size, 3);
check(
  "access log: each of the patient's entries is in the tree",
  log.entries.every((e) => included(leafOf(e), e.index, log.size, e.proof ?? [], log.root)),
);
// A replay is refused before the record is looked up, so its entry names no patient: the
// patient sees the allowed read and the stranger's refused one, and nothing else.
eq(
  "access log: the patient's entries",
  log.entries.map((e) => `${e.requester.toLowerCase()}:${e.allowed}`).join(","),
  `${requester.address.toLowerCase()}:true,${stranger.address.toLowerCase()}:false`,
);

done("viem uploads, reads a record and checks the access log at a running gatekeeper");
