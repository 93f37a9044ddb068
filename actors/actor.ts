// The actor runtime: a bounded mailbox handled one message at a time.
// An actor owns its state; nothing else touches it. A handler may be synchronous (the fast path)
// or return a promise, in which case the next message waits until it settles.
import { Queue } from './queue.js';

export abstract class Actor<M> {
  private readonly mailbox = new Queue<M>();
  private running = false;
  private stopped = false;

  constructor(readonly address: string, private readonly capacity: number) {}

  /**
   * Queues a message. False when the mailbox is full or the actor has stopped: the sender must say 'busy'.
   * `system` messages (close, checkpoint) are taken even when the mailbox is full.
   */
  tell(msg: M, system = false): boolean {
    if (this.stopped || (!system && this.mailbox.length >= this.capacity)) return false;
    this.mailbox.push(msg);
    if (!this.running) this.run();
    return true;
  }

  get queued(): number {
    return this.mailbox.length;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  protected abstract receive(msg: M): void | Promise<void>;

  /** Called when receive throws or rejects. The default stops the actor; its owner (supervisor) decides what next. */
  protected crashed(error: unknown, msg: M): void {
    this.stop();
    void error;
    void msg;
  }

  /** Stops taking messages; returns what was still queued so the owner can hand it on. */
  protected stop(): M[] {
    this.stopped = true;
    return this.mailbox.drain();
  }

  private run(): void {
    this.running = true;
    while (this.mailbox.length > 0 && !this.stopped) {
      const msg = this.mailbox.shift()!;
      let result: void | Promise<void>;
      try {
        result = this.receive(msg);
      } catch (e) {
        this.crashed(e, msg);
        continue;
      }
      if (result instanceof Promise) {
        result.then(
          () => this.run(),
          (e: unknown) => {
            this.crashed(e, msg);
            this.run();
          },
        );
        return; // still running: the promise continuation resumes the loop
      }
    }
    this.running = false;
  }
}
