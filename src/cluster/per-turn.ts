// Work asked for during one turn of the event loop, done together once the turn ends: under a connection
// storm, one Redis command for all the CONNECTs of a turn instead of one each (a round trip costs the
// gateway tens of µs of CPU whatever it carries). An idle gateway pays one setImmediate of latency.

/**
 * Returns a function that queues one item and resolves with its result; `flush` gets the items of a turn in
 * order and answers each, in the same order. A failed flush rejects every item of its batch.
 */
export function perTurn<T, R>(flush: (items: T[]) => Promise<R[]>): (item: T) => Promise<R> {
  let pending: Array<{ item: T; resolve: (result: R) => void; reject: (err: unknown) => void }> = []
  const run = (): void => {
    const batch = pending
    pending = []
    flush(batch.map((b) => b.item)).then(
      (results) => batch.forEach((b, i) => b.resolve(results[i] as R)),
      (err: unknown) => batch.forEach((b) => b.reject(err)),
    )
  }
  return (item) =>
    new Promise<R>((resolve, reject) => {
      pending.push({ item, resolve, reject })
      if (pending.length === 1) setImmediate(run)
    })
}
