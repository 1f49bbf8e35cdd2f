"""Small WASI modules in WAT, each misbehaving in one way, for the runtime's tests and the
end-to-end bad-input tests."""

INFINITE_LOOP = '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'
GROWS_UNTIL_REFUSED = """
(module (memory (export "memory") 1)
  (func (export "_start")
    (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable))
"""
SLEEPS_FOR_A_DAY = """
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    ;; one subscription at offset 0: a relative timeout on the monotonic clock
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 86400000000000))
    (drop (call $poll_oneoff (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))))
"""
