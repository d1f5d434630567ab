// The engine registry (moleculer's `resolve()`/`register()` habit): engines are chosen by name, per
// account (`engine` field) or by default (`ENGINE`). An unknown name is a typed 422, never a crash.
import { UnknownEngineError } from "../errors.ts";
import type { EngineFactory } from "./base.ts";
import { createSimulatedEngine } from "./simulated.ts";
import { createWebjsEngine } from "./webjs/index.ts";

export interface EngineCapabilities {
  /** The engine implements `simulate.*` (scan/disconnect/logout/message from the phone's side). @default false */
  simulate?: boolean;
}

interface Registration {
  factory: EngineFactory;
  capabilities: EngineCapabilities;
}

const engines = new Map<string, Registration>();

export function registerEngine(name: string, factory: EngineFactory, capabilities: EngineCapabilities = {}) {
  engines.set(name, { factory, capabilities });
}

/** The factory of engine `name`; throws UnknownEngineError (422) for a name nobody registered. */
export function resolveEngine(name: string): EngineFactory {
  const found = engines.get(name);
  if (!found) throw new UnknownEngineError(name, engineNames());
  return found.factory;
}

export function engineCapabilities(name: string): EngineCapabilities {
  const found = engines.get(name);
  if (!found) throw new UnknownEngineError(name, engineNames());
  return found.capabilities;
}

export function engineNames(): string[] {
  return [...engines.keys()];
}

registerEngine("simulated", createSimulatedEngine, { simulate: true });
registerEngine("webjs", createWebjsEngine);
