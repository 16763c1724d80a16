// Bounded waits for events: a test awaits what it expects, and fails in time if it never comes.

interface Emitter {
  once (event: string, listener: (...args: never[]) => void): unknown
  removeListener (event: string, listener: (...args: never[]) => void): unknown
}

/** Resolves with the event's first argument, or rejects after `ms`. */
export function nextEvent<T = unknown> (emitter: Emitter, event: string, ms = 3000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const listener = (arg: T): void => { clearTimeout(timer); resolve(arg) }
    const timer = setTimeout(() => {
      emitter.removeListener(event, listener as (...args: never[]) => void)
      reject(new Error(`no '${event}' event within ${ms} ms`))
    }, ms)
    emitter.once(event, listener as (...args: never[]) => void)
  })
}
