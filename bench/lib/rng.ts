// A small seeded generator (xorshift32): benchmark trees are random-looking but the same on every run.
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  below(n: number): number {
    return this.next() % n;
  }
  fill(buf: Buffer): void {
    const words = new Uint32Array(buf.buffer, buf.byteOffset, Math.floor(buf.length / 4));
    for (let i = 0; i < words.length; i++) words[i] = this.next();
    for (let i = words.length * 4; i < buf.length; i++) buf[i] = this.next() & 0xff;
  }
}
