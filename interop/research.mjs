// docs/protocol.md's research route against a running gatekeeper that holds its holder's key:
// a researcher's study approved, four patients' records uploaded and three of them opted in by
// signatures that a relayer sends; a condition-count query signed as a ResearchRequest; the
// answer's signature recovered from keccak256 of its exact text (no EIP-191 prefix), its cells
// (a small cell suppressed, a patient not opted in not counted); the same query answered again
// alike; another query refused with 409 unrecorded_answer until the receipt is on chain; the
// receipt's cost as the document's formula gives it.
//
// Usage: node research.mjs <rpc-url> <deployments/<chainId>.json> <gatekeeper-url>
// The gatekeeper must serve for anvil's account 2 with that account's keystore
// (--anchor-keystore); run.sh starts one when DATABASE_URL is set.
import { keccak256, recoverAddress, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import {
  GATEKEEPER_TYPES,
  OPT_IN_TYPES,
  ROLE,
  anvilAccounts,
  checker,
  connect,
  nextIssuedAt,
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

// ---- A study: conditions only, cells under 2 suppressed, a budget of one epsilon.
const CONDITIONS = 5;
await chain.credential(researcher.address, ROLE.researcher);
await chain.send(researcher, studies, abis.studies, "registerStudy", [
  keccak256(toHex("protocol")),
  1n << BigInt(CONDITIONS),
  2,
  1_000_000n,
]);
const studyId = await client.readContract({ address: studies, abi: abis.studies, functionName: "studyCount" });
await chain.send(governance, studies, abis.studies, "approveStudy", [studyId]);

// ---- Four diabetic patients at the holder; the first three opt in by signature.
const DIABETES = "44054006";
const bundle = (gender, birthDate) =>
  new TextEncoder().encode(
    JSON.stringify({
      resourceType: "Bundle",
      type: "collection",
      entry: [
        { resource: { resourceType: "Patient", gender, birthDate } },
        {
          resource: {
            resourceType: "Condition",
            code: { coding: [{ system: "http://snomed.info/sct", code: DIABETES }] },
          },
        },
      ],
    }),
  );
const patients = [
  ["female", "1970-05-01"],
  ["female", "1975-09-12"],
  ["male", "1950-01-01"],
  ["male", "1960-03-03"],
].map(([gender, birthDate]) => ({ account: privateKeyToAccount(generatePrivateKey()), gender, birthDate }));
for (const p of patients) {
  const { response } = await upload(
    gatekeeperUrl,
    gatekeeperDomain,
    holder,
    p.account.address,
    CONDITIONS,
    bundle(p.gender, p.birthDate),
  );
  eq(`upload of a ${p.gender} patient's bundle: 201`, response.status, 201);
}
for (const p of patients.slice(0, 3)) {
  // The participation's epoch and last signed time order signed messages (not a nonce).
  const slot = await client.readContract({
    address: studies,
    abi: abis.studies,
    functionName: "participationOf",
    args: [studyId, p.account.address],
  });
  const message = {
    studyId,
    patient: p.account.address,
    epoch: slot.epoch,
    issuedAt: nextIssuedAt(slot.signedAt),
    deadline: (await chain.now()) + 3600n,
  };
  const signature = await p.account.signTypedData({
    domain: studyDomain,
    types: OPT_IN_TYPES,
    primaryType: "OptIn",
    message,
  });
  await chain.send(relayer, studies, abis.studies, "optInBySig", [
    message.studyId,
    message.patient,
    message.epoch,
    message.issuedAt,
    message.deadline,
    signature,
  ]);
}
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

const count = { kind: "condition-count", system: "http://snomed.info/sct", code: DIABETES, epsilon: null, pinnedBlock };
const first = await ask(count);
eq("query: 200", first.response.status, 200);
const { answer, signature } = await first.response.json();
eq(
  "the answer is signed by the holder over keccak256 of its text",
  (await recoverAddress({ hash: keccak256(toHex(answer)), signature })).toLowerCase(),
  holder.address.toLowerCase(),
);
const parsed = JSON.parse(answer);
eq("answer: queryHash", parsed.queryHash, first.queryHash);
eq("answer: studyId", BigInt(parsed.studyId), studyId);
eq("answer: pinnedBlock", parsed.pinnedBlock, pinnedBlock);
eq("answer: minCellSize", parsed.minCellSize, 2);
// Had the last man been counted, his cell would hold 2 and show.
eq(
  "answer: the opted-in counted, a cell under minCellSize suppressed",
  parsed.result.cells
    .map((c) => `${c.ageBand}/${c.sex}:${c.suppressed ? "suppressed" : c.count}`)
    .join(","),
  "40-64/female:2,65+/male:suppressed",
);
const again = await ask(count);
eq("the same query again: the same answer", (await again.response.json()).answer, answer);

const noisy = { ...count, epsilon: 0.5 };
const early = await ask(noisy);
eq("another query before the receipt: 409", early.response.status, 409);
eq("  code unrecorded_answer", (await early.response.json()).error.code, "unrecorded_answer");

// ---- The receipt: cost 1 without epsilon.
await chain.send(researcher, studies, abis.studies, "recordQuery", [
  studyId,
  first.queryHash,
  1n,
  BigInt(pinnedBlock),
  keccak256(toHex(answer)),
]);
const later = await ask(noisy);
eq("the other query once the receipt is on chain: 200", later.response.status, 200);
await chain.send(researcher, studies, abis.studies, "recordQuery", [
  studyId,
  later.queryHash,
  500_000n, // max(1, ceil(0.5 × 10^6))
  BigInt(pinnedBlock),
  keccak256(toHex((await later.response.json()).answer)),
]);
const study = await client.readContract({ address: studies, abi: abis.studies, functionName: "studyOf", args: [studyId] });
eq("the study's budget spent: 1 + 500,000", study.spent, 500_001n);
const tooDear = await ask({ ...count, epsilon: 0.6 });
eq("a query that costs more than the budget left: 403", tooDear.response.status, 403);
eq("  code budget_exhausted", (await tooDear.response.json()).error.code, "budget_exhausted");

done("viem asks a research query, verifies the holder's signed answer and records its receipt");
