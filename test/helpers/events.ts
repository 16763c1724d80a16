// Bounded waits for events: a test awaits what it expects, and fails in time if it never comes.

// Parameters typed `never` so any emitter fits: node's, and MQTT.js's typed one.
interface Emitter {
  once(event: never, listener: never): unknown
  removeListener(event: never, listener: never): unknown
}

/** Resolves with the event's first argument, or rejects after `ms`. */
export function nextEvent<T = unknown>(emitter: Emitter, event: string, ms = 3000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const listener = (arg: T): void => {
      clearTimeout(timer)
      resolve(arg)
    }
    const timer = setTimeout(() => {
      emitter.removeListener(event as never, listener as never)
      reject(new Error(`no '${event}' event within ${ms} ms`))
    }, ms)
    emitter.once(event as never, listener as never)
  })
}
