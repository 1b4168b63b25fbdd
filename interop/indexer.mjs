// docs/protocol.md's indexer read API against a running indexer, for what a JavaScript client
// reads: a grant of a category above bit 52 listed both ways with its mask as a decimal string
// (a JSON number would be rounded), the same grant in the timeline and in /v1/access, and a
// study whose budget is above 2^53 - 1 listed with its amounts as strings; ?min_block waits for
// the block of one's own transaction.
//
// Usage: node indexer.mjs <rpc-url> <deployments/<chainId>.json> <indexer-url>
import { keccak256, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { ROLE, anvilAccounts, checker, connect } from "./lib.mjs";

const [rpcUrl, deploymentFile, indexerUrl] = process.argv.slice(2);
if (!rpcUrl || !deploymentFile || !indexerUrl) {
  console.error("usage: node indexer.mjs <rpc-url> <deployments/<chainId>.json> <indexer-url>");
  process.exit(2);
}
const { check, eq, done } = checker();
const chain = await connect(rpcUrl, deploymentFile, { check, eq });
const { deployment, client, abis } = chain;
const [governance, , , researcher] = anvilAccounts;
const lower = (a) => a.toLowerCase();
async function get(path) {
  const response = await fetch(`${indexerUrl}${path}`);
  eq(`GET ${path.split("?")[0]}: 200`, response.status, 200);
  return response.json();
}

// ---- A grant of labs and category 60, relayed.
const provider = privateKeyToAccount(generatePrivateKey()).address;
await chain.credential(provider, ROLE.provider);
const patient = privateKeyToAccount(generatePrivateKey());
const categories = (1n << 3n) | (1n << 60n);
// The receipt's block, not viem's getBlockNumber (cached for its polling interval).
const block = Number((await chain.grantBySig(patient, provider, categories)).receipt.blockNumber);

const mine = await get(`/v1/patients/${patient.address}/grants?min_block=${block}`);
check("grants: the answer reflects the block asked for", mine.block >= block, `${mine.block}`);
eq("grants: one grant", mine.grants.length, 1);
const g = mine.grants[0];
eq("grants: grantee", lower(g.grantee), lower(provider));
eq("grants: a mask above 2^53 - 1 is a decimal string", g.categoryMask, categories.toString());
eq("grants: category names", g.categories.join(","), "labs,60");
eq("grants: purpose", g.purpose, "treatment");
eq("grants: live", g.live, true);
const theirs = await get(`/v1/grantees/${provider}/patients?min_block=${block}`);
eq("patients of the grantee: the patient", lower(theirs.patients[0].patient), lower(patient.address));
eq("patients of the grantee: the same mask", theirs.patients[0].categoryMask, categories.toString());
const access = await get(
  `/v1/access?grantee=${provider}&patient=${patient.address}&category=labs&min_block=${block}`,
);
eq("access: allowed", access.allowed, true);
eq("access: via", access.via, "grant");
const timeline = await get(`/v1/patients/${patient.address}/timeline?min_block=${block}`);
const granted = timeline.events.find((e) => e.type === "granted");
eq("timeline: the grant's mask as a string", granted?.data.categoryMask, categories.toString());

// ---- A study whose budget is above 2^53 - 1: governance first lifts its ceilings that far
// (a budget of 10 epsilon is the largest on the defaults; this researcher has studies already).
await chain.credential(researcher.address, ROLE.researcher);
const budget = (1n << 60n) + 1n;
await chain.send(governance, deployment.studyRegistry, abis.studies, "setResearchPolicy", [
  5,
  budget,
  (1n << 64n) - 1n,
]);
await chain.send(researcher, deployment.studyRegistry, abis.studies, "registerStudy", [
  keccak256(toHex("indexer check")),
  1n << 5n,
  5,
  budget,
]);
const studyId = await client.readContract({
  address: deployment.studyRegistry,
  abi: abis.studies,
  functionName: "studyCount",
});
const approved = await chain.send(governance, deployment.studyRegistry, abis.studies, "approveStudy", [
  studyId,
]);
const studyBlock = Number(approved.blockNumber);
const { study } = await get(`/v1/studies/${studyId}?min_block=${studyBlock}`);
eq("study: status", study.status, "approved");
eq("study: budget above 2^53 - 1 as a string", study.budget, budget.toString());
eq("study: spent 0 as a number", study.spent, 0);
eq("study: researcher", lower(study.researcher), lower(researcher.address));
const all = await get(`/v1/studies?min_block=${studyBlock}`);
check("studies: listed", all.studies.some((s) => BigInt(s.studyId) === studyId));

const missing = await fetch(`${indexerUrl}/v1/pointers/${keccak256(toHex("no such record"))}`);
eq("an unknown record: 404", missing.status, 404);
eq("  code not_found", (await missing.json()).error.code, "not_found");

done("viem reads the indexer's answers, masks and amounts above 2^53 exactly");
