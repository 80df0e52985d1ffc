// Bounds how many child processes a test runs at once. Eleven CLI processes started together on a
// loaded 2-core box each took long enough to trip their own timers: a queue decides the order, not a timer.
import { availableParallelism } from 'node:os'

/** Processes at once by default: one per core, at least 2. */
export const DEFAULT_PROCESS_SLOTS = Math.max(2, availableParallelism())

/** A counting semaphore: at most `slots` tasks of `run` are running; the others wait in order. */
export class Semaphore {
  private active = 0
  private readonly waiting: Array<() => void> = []

  constructor (readonly slots: number) {
    if (!Number.isSafeInteger(slots) || slots < 1) throw new RangeError('slots must be a positive integer')
  }

  /** Runs `task` once a slot is free; the slot is given back however the task ends. */
  async run<T> (task: () => Promise<T>): Promise<T> {
    if (this.active < this.slots) this.active++
    else await new Promise<void>(resolve => this.waiting.push(resolve))
    try {
      return await task()
    } finally {
      // Hand the slot straight to the next waiter (active stays), or give it back.
      const next = this.waiting.shift()
      if (next !== undefined) next()
      else this.active--
    }
  }
}

/** The semaphore every test of one tap process shares for the child processes it starts. */
export const processSlots = new Semaphore(DEFAULT_PROCESS_SLOTS)
