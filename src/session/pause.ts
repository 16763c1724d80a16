/** Why the client's socket is not being read: several may hold at once (a bit each). */
export const Pause = { connecting: 1, backpressure: 2, throttle: 4 } as const
