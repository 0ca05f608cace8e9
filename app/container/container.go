// Package container builds the app's services once, on first use, and hands
// them to the UI. Each accessor is typed; there is no map of names to any.
package container

import (
	"context"
	"sync"

	"github.com/fluxforge/fluxforge/app/core"
	"github.com/fluxforge/fluxforge/app/service/finetuning"
	"github.com/fluxforge/fluxforge/app/service/gallery"
	"github.com/fluxforge/fluxforge/app/service/inference"
	"github.com/fluxforge/fluxforge/app/service/models"
)

// DBName is the IndexedDB database holding the user's work.
const DBName = "fluxforge"

// Options configures a Container. Zero values give the browser setup.
type Options struct {
	// API is the base client setup; the user's proxy URL and token, when set
	// in Settings, take precedence over BaseURL and Token.
	API core.APIOptions
	// OpenStorage opens the storage on first use. Nil: IndexedDB in the
	// browser, memory where there is none.
	OpenStorage func(context.Context) (core.Storage, error)
}

// Container holds the app's services. The zero value is not usable: call New.
type Container struct {
	opts Options

	config  lazy[*core.Config]
	flags   lazy[*core.Flags]
	api     lazy[*core.API]
	storage lazy[*lazyStorage]

	finetuning lazy[*finetuning.Service]
	models     lazy[*models.Service]
	gallery    lazy[*gallery.Gallery]
	inference  lazy[*inference.Service]
}

// lazy holds one service, built by the first get.
type lazy[T any] struct {
	once sync.Once
	v    T
}

func (l *lazy[T]) get(build func() T) T {
	l.once.Do(func() { l.v = build() })
	return l.v
}

// New returns a Container; nothing is built until asked for.
func New(opts Options) *Container {
	if opts.OpenStorage == nil {
		opts.OpenStorage = openBrowserStorage
	}
	return &Container{opts: opts}
}

// Config is the configuration: defaults, the proxy's values, the user's settings.
func (c *Container) Config() *core.Config { return c.config.get(core.NewConfig) }

// Flags answers which features are on.
func (c *Container) Flags() *core.Flags {
	return c.flags.get(func() *core.Flags { return core.NewFlags(c.Config()) })
}

// API is the client for the proxy.
func (c *Container) API() *core.API {
	return c.api.get(func() *core.API {
		a := core.NewAPI(c.opts.API)
		a.SetTarget(c.target())
		return a
	})
}

// Retarget points the API client at the proxy the settings name; call it
// after the user changes the proxy URL or token.
func (c *Container) Retarget() { c.API().SetTarget(c.target()) }

func (c *Container) target() (baseURL, token string) {
	baseURL, token = c.opts.API.BaseURL, c.opts.API.Token
	if u := c.Config().String(core.KeyProxyURL); u != "" {
		baseURL = u
	}
	if t := c.Config().String(core.KeyProxyToken); t != "" {
		token = t
	}
	return baseURL, token
}

// Storage is where the user's work is kept. It opens on its first operation,
// so asking for it never blocks.
func (c *Container) Storage() core.Storage { return c.lazyStorage() }

func (c *Container) lazyStorage() *lazyStorage {
	return c.storage.get(func() *lazyStorage { return &lazyStorage{open: c.opts.OpenStorage} })
}

// StorageVolatile reports whether the storage lives only in memory, so the
// shell can warn that work will not survive a reload. It opens the storage.
func (c *Container) StorageVolatile(ctx context.Context) (bool, error) {
	s := c.lazyStorage()
	if _, err := s.get(ctx); err != nil {
		return false, err
	}
	return s.volatile, nil
}

// Finetuning starts trainings and follows their jobs. Its first use resumes
// the jobs a previous session left unfinished (once per app start, however
// often the tab mounts), and it keeps polling whichever tab is open, for as
// long as the page lives.
func (c *Container) Finetuning() *finetuning.Service {
	return c.finetuning.get(func() *finetuning.Service {
		s := finetuning.New(context.Background(), c.API(), c.Storage())
		s.Resume()
		return s
	})
}

// Models lists, caches and deletes the account's finetunes.
func (c *Container) Models() *models.Service {
	return c.models.get(func() *models.Service {
		return models.New(c.API(), c.Storage(), models.DefaultConcurrency)
	})
}

// Gallery keeps every generated image with the request that made it.
func (c *Container) Gallery() *gallery.Gallery {
	return c.gallery.get(func() *gallery.Gallery { return gallery.New(c.Storage()) })
}

// Inference generates images. One service per app keeps the in-flight limit
// for the whole account, not per tab visit; its first use resumes the tasks a
// previous session left running (once per app start), polled for as long as
// the page lives, so leaving the tab neither stops nor repeats them.
func (c *Container) Inference() *inference.Service {
	return c.inference.get(func() *inference.Service {
		s := inference.New(c.API(), c.Gallery(), inference.Options{})
		// Each task's failure is kept in its record, which subscribers hear
		// and the gallery shows; a gallery that cannot be read fails the
		// tab's own listing of it as well, where the user is told.
		go func() { _ = s.Resume(context.Background(), nil) }()
		return s
	})
}
