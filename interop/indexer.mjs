// docs/protocol.md's indexer read API against a running indexer, for what a JavaScript client
// reads: a grant of a category above bit 52 listed both ways with its mask as a decimal string
// (a JSON number would be rounded), the same grant in the timeline and in /v1/access, and a
// study whose budget is above 2^53 - 1 listed with its amounts as strings; ?min_block waits for
// the block of one's own transaction. The per-patient and per-grantee routes answer only a
// request signed with viem's signTypedData by the patient or the grantee (the x-medrec-request
// header, docs/protocol.md): unsigned, a stranger's, a replay and one signed for another query
// are refused.
//
// Usage: node indexer.mjs <rpc-url> <deployments/<chainId>.json> <indexer-url>
import { keccak256, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { ROLE, anvilAccounts, checker, connect, indexerHeader } from "./lib.mjs";

const [rpcUrl, deploymentFile, indexerUrl] = process.argv.slice(2);
if (!rpcUrl || !deploymentFile || !indexerUrl) {
  console.error("usage: node indexer.mjs <rpc-url> <deployments/<chainId>.json> <indexer-url>");
  process.exit(2);
}
const { check, eq, done } = checker();
const chain = await connect(rpcUrl, deploymentFile, { check, eq });
const { deployment, client, abis, chainId } = chain;
const [governance, , , researcher] = anvilAccounts;
const lower = (a) => a.toLowerCase();
/** The x-medrec-request header of a GET of `path` signed by `account`. */
const signed = (account, path, overrides) =>
  indexerHeader(account, chainId, deployment.consentRegistry, path, overrides);
/** GET `path`, signed by `account` if given. */
async function fetchAs(path, account, header) {
  const headers = account ? { "x-medrec-request": header ?? (await signed(account, path)) } : {};
  return fetch(`${indexerUrl}${path}`, { headers });
}
async function get(path, account) {
  const response = await fetchAs(path, account);
  eq(`GET ${path.split("?")[0]}: 200`, response.status, 200);
  return response.json();
}

// ---- A grant of labs and category 60, relayed.
const providerAccount = privateKeyToAccount(generatePrivateKey());
const provider = providerAccount.address;
await chain.credential(provider, ROLE.provider);
const patient = privateKeyToAccount(generatePrivateKey());
const categories = (1n << 3n) | (1n << 60n);
// The receipt's block, not viem's getBlockNumber (cached for its polling interval).
const block = Number((await chain.grantBySig(patient, provider, categories)).receipt.blockNumber);

const grantsPath = `/v1/patients/${patient.address}/grants?min_block=${block}`;
// Who may ask: an unsigned request (401), a stranger's (403), a replay and a signature for
// another query (401), then the patient.
const unsigned = await fetchAs(grantsPath);
eq("grants unsigned: 401", unsigned.status, 401);
eq("  code unauthenticated", (await unsigned.json()).error.code, "unauthenticated");
const stranger = privateKeyToAccount(generatePrivateKey());
const theirs0 = await fetchAs(grantsPath, stranger);
eq("grants signed by a stranger: 403", theirs0.status, 403);
eq("  code denied", (await theirs0.json()).error.code, "denied");
const other = await fetchAs(grantsPath, patient, await signed(patient, `${grantsPath}&limit=1`));
eq("grants signed for another query: 401", other.status, 401);
const once = await signed(patient, grantsPath);
eq("grants signed by the patient: 200", (await fetchAs(grantsPath, patient, once)).status, 200);
eq("the same signed request again: 401", (await fetchAs(grantsPath, patient, once)).status, 401);
const mine = await get(grantsPath, patient);
check("grants: the answer reflects the block asked for", mine.block >= block, `${mine.block}`);
eq("grants: one grant", mine.grants.length, 1);
const g = mine.grants[0];
eq("grants: grantee", lower(g.grantee), lower(provider));
eq("grants: a mask above 2^53 - 1 is a decimal string", g.categoryMask, categories.toString());
eq("grants: category names", g.categories.join(","), "labs,60");
eq("grants: purpose", g.purpose, "treatment");
eq("grants: live", g.live, true);
const theirs = await get(`/v1/grantees/${provider}/patients?min_block=${block}`, providerAccount);
eq("patients of the grantee: the patient", lower(theirs.patients[0].patient), lower(patient.address));
eq("patients of the grantee: the same mask", theirs.patients[0].categoryMask, categories.toString());
const access = await get(
  `/v1/access?grantee=${provider}&patient=${patient.address}&category=labs&min_block=${block}`,
  providerAccount,
);
eq("access: allowed", access.allowed, true);
eq("access: via", access.via, "grant");
const timeline = await get(`/v1/patients/${patient.address}/timeline?min_block=${block}`, patient);
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

// An unknown record is refused as one not the asker's: a refusal does not tell whether it exists.
const missing = await fetchAs(`/v1/pointers/${keccak256(toHex("no such record"))}`, patient);
eq("an unknown record: 403", missing.status, 403);
eq("  code denied", (await missing.json()).error.code, "denied");

done("viem reads the indexer's answers, masks and amounts above 2^53 exactly");
