// Errors that cross NATS arrive as plain objects; Moleculer rebuilds only its own classes. This
// regenerator rebuilds Switchboard's (src/errors.ts) too, so a caller on another node can test
// `err instanceof NotOwnerError` instead of comparing `type` strings.
import { Errors } from "moleculer";
import * as SwitchboardErrors from "./errors.ts";

type ErrorClass = { readonly name: string; readonly prototype: Errors.MoleculerError };

function isErrorClass(value: unknown): value is ErrorClass {
  return typeof value === "function" && value.prototype instanceof Errors.MoleculerError;
}

const CLASSES = new Map<string, ErrorClass>(
  Object.values(SwitchboardErrors as Record<string, unknown>)
    .filter(isErrorClass)
    .map((c): [string, ErrorClass] => [c.name, c]),
);

export class SwitchboardRegenerator extends Errors.Regenerator {
  /** The broker is kept out of JSON: the regenerator sits in the broker options `$node.options` returns. */
  override init(broker: Parameters<Errors.Regenerator["init"]>[0]): void {
    Object.defineProperty(this, "broker", { value: broker, enumerable: false, writable: true });
  }

  override restoreCustomError(plain: Errors.PlainMoleculerError): Error {
    const Class = CLASSES.get(plain.name);
    if (!Class) return undefined as unknown as Error; // not ours: Moleculer rebuilds it
    // Each class has its own constructor arguments: rebuild the instance from the plain fields.
    const err = Object.create(Class.prototype) as Errors.MoleculerError;
    return Object.assign(err, {
      name: plain.name,
      message: plain.message,
      code: plain.code,
      type: plain.type,
      data: plain.data,
      retryable: plain.retryable,
    });
  }
}
