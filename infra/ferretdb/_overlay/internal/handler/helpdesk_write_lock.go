package handler

import (
	"sync"

	"github.com/FerretDB/FerretDB/internal/types"
)

// writeLocks serialises update, findAndModify and delete per database. FerretDB v1 runs them as a read,
// a change in Go and a write in separate steps, so without this two concurrent `$inc` on one document
// could both read the same value (lost update), which MongoDB never allows for a single document.
var writeLocks sync.Map

func lockDatabase(document *types.Document) func() {
	name := ""
	if v, err := document.Get("$db"); err == nil {
		if s, ok := v.(string); ok {
			name = s
		}
	}
	mu, _ := writeLocks.LoadOrStore(name, new(sync.Mutex))
	m := mu.(*sync.Mutex)
	m.Lock()
	return m.Unlock
}
