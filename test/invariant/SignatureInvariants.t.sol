// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Base} from "../Base.t.sol";
import {SignatureHandler} from "./SignatureHandler.sol";
import {IConsentRegistry} from "../../contracts/interfaces/IConsentRegistry.sol";

/// @notice Signed consents obey their order whatever a relayer does (issue 14, hole 3).
contract SignatureInvariantsTest is Base {
    SignatureHandler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new SignatureHandler(consent);
        targetContract(address(handler));
    }

    /// No stale message (replayed, older than one applied, or of a voided epoch) ever applied,
    /// and none in order was refused.
    function invariant_onlyInOrderSignaturesApply() public view {
        assertEq(handler.staleAccepted(), 0, "a stale signed message applied");
        assertEq(handler.validRefused(), 0, "an in-order signed message was refused");
    }

    /// The chain's epoch, last signed time and grant are the model's.
    function invariant_slotsMatchModel() public view {
        for (uint256 i; i < 2; ++i) {
            address p = handler.patientOf(i);
            for (uint256 j; j < 2; ++j) {
                address g = handler.grantees(j);
                (uint24 epoch, uint40 signedAt, bool granted,) = handler.model(p, g);
                IConsentRegistry.Grant memory s = consent.grantOf(p, g);
                assertEq(s.epoch, epoch, "epoch");
                assertEq(s.signedAt, signedAt, "signedAt");
                assertEq(s.categories != 0, granted, "granted");
            }
        }
    }
}
