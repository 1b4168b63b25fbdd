// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Script, console2} from "forge-std/Script.sol";
import {ParticipantRegistry} from "../contracts/ParticipantRegistry.sol";
import {ConsentRegistry} from "../contracts/ConsentRegistry.sol";
import {RecordRegistry} from "../contracts/RecordRegistry.sol";
import {StudyRegistry} from "../contracts/StudyRegistry.sol";

/// @notice Deploys the four registries to any chain and writes their addresses to
/// `deployments/<chainid>.json`.
/// Environment: MEDREC_ADMIN (governance account; default: the broadcasting account),
/// MEDREC_EMERGENCY_CAP (seconds; default 86400).
/// Usage: forge script script/Deploy.s.sol --rpc-url URL --broadcast --private-key KEY
contract Deploy is Script {
    function run() external {
        uint40 cap = uint40(vm.envOr("MEDREC_EMERGENCY_CAP", uint256(1 days)));
        vm.startBroadcast();
        (, address deployer,) = vm.readCallers();
        address admin = vm.envOr("MEDREC_ADMIN", deployer);
        uint256 startBlock = block.number;
        ParticipantRegistry participants = new ParticipantRegistry(admin);
        ConsentRegistry consent = new ConsentRegistry(admin, participants, cap);
        RecordRegistry records = new RecordRegistry(participants, consent);
        StudyRegistry studies = new StudyRegistry(admin, participants);
        vm.stopBroadcast();

        string memory key = "deployment";
        vm.serializeUint(key, "chainId", block.chainid);
        vm.serializeUint(key, "startBlock", startBlock);
        vm.serializeAddress(key, "admin", admin);
        vm.serializeAddress(key, "participantRegistry", address(participants));
        vm.serializeAddress(key, "consentRegistry", address(consent));
        vm.serializeAddress(key, "recordRegistry", address(records));
        string memory json = vm.serializeAddress(key, "studyRegistry", address(studies));
        string memory path =
            string.concat(vm.projectRoot(), "/deployments/", vm.toString(block.chainid), ".json");
        vm.writeJson(json, path);
        console2.log("deployments written to", path);
    }
}
