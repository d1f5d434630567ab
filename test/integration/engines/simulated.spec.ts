// The engine contract suite against the simulated engine (the webjs engine runs the same suite).
import { createSimulatedEngine, sentBySimulatedEngine } from "../../../src/engines/simulated.ts";
import { engineContractSuite } from "../../contract/engine-contract.ts";

engineContractSuite("simulated", createSimulatedEngine, {
  canScan: true,
  showsQr: true,
  engineOptions: { simulatedAckMs: 20 },
  delivered: sentBySimulatedEngine,
});
