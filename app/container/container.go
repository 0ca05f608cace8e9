// Package container builds the app's services once, on first use, and hands
// them to the UI. Each accessor is typed; there is no map of names to any.
package container

import (
	"context"
	"sync"

	"github.com/fluxforge/fluxforge/app/core"
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

	configOnce sync.Once
	config     *core.Config

	flagsOnce sync.Once
	flags     *core.Flags

	apiOnce sync.Once
	api     *core.API

	storageOnce sync.Once
	storage     *lazyStorage
}

// New returns a Container; nothing is built until asked for.
func New(opts Options) *Container {
	if opts.OpenStorage == nil {
		opts.OpenStorage = openBrowserStorage
	}
	return &Container{opts: opts}
}

// Config is the configuration: defaults, the proxy's values, the user's settings.
func (c *Container) Config() *core.Config {
	c.configOnce.Do(func() { c.config = core.NewConfig() })
	return c.config
}

// Flags answers which features are on.
func (c *Container) Flags() *core.Flags {
	c.flagsOnce.Do(func() { c.flags = core.NewFlags(c.Config()) })
	return c.flags
}

// API is the client for the proxy.
func (c *Container) API() *core.API {
	c.apiOnce.Do(func() {
		c.api = core.NewAPI(c.opts.API)
		c.api.SetTarget(c.target())
	})
	return c.api
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
func (c *Container) Storage() core.Storage {
	c.storageOnce.Do(func() { c.storage = &lazyStorage{open: c.opts.OpenStorage} })
	return c.storage
}

// StorageVolatile reports whether the storage lives only in memory, so the
// shell can warn that work will not survive a reload. It opens the storage.
func (c *Container) StorageVolatile(ctx context.Context) (bool, error) {
	s := c.Storage().(*lazyStorage)
	if _, err := s.get(ctx); err != nil {
		return false, err
	}
	return s.volatile, nil
}
