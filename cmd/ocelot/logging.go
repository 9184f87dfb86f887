package main

import (
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"path/filepath"

	"ocelot/config"
)

// levelOf maps Felix's severities onto slog levels.
func levelOf(sev string) slog.Level {
	switch sev {
	case "TRACE", "DEBUG":
		return slog.LevelDebug
	case "WARNING":
		return slog.LevelWarn
	case "ERROR":
		return slog.LevelError
	case "FATAL":
		return slog.LevelError + 4
	}
	return slog.LevelInfo
}

// logging fans records out to the screen, the log file and syslog, each
// with its own level that can change while running.
type logging struct {
	screen, file, sys slog.LevelVar
	handlers          []slog.Handler
	closers           []io.Closer
}

// newLogging opens the configured destinations. A destination that cannot
// be opened is reported on stderr and skipped.
func newLogging(cfg *config.Config, stderr io.Writer) *logging {
	l := &logging{}
	l.setLevels(cfg)
	opts := func(v *slog.LevelVar) *slog.HandlerOptions { return &slog.HandlerOptions{Level: v} }
	l.handlers = append(l.handlers, slog.NewTextHandler(stderr, opts(&l.screen)))
	if cfg.LogFilePath != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.LogFilePath), 0o755); err == nil {
			if f, err := os.OpenFile(cfg.LogFilePath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
				l.handlers = append(l.handlers, slog.NewJSONHandler(f, opts(&l.file)))
				l.closers = append(l.closers, f)
			} else {
				fmt.Fprintf(stderr, "warning: LogFilePath %s: %v; not logging to a file\n", cfg.LogFilePath, err)
			}
		}
	}
	if cfg.LogSeveritySys == "" {
		// LogSeveritySys = none: no syslog.
	} else if w, err := syslog.New(syslog.LOG_INFO|syslog.LOG_DAEMON, "ocelot"); err == nil {
		l.handlers = append(l.handlers, slog.NewTextHandler(w, opts(&l.sys)))
		l.closers = append(l.closers, w)
	}
	return l
}

func (l *logging) setLevels(cfg *config.Config) {
	l.screen.Set(levelOf(cfg.LogSeverityScreen))
	l.file.Set(levelOf(cfg.LogSeverityFile))
	l.sys.Set(levelOf(cfg.LogSeveritySys))
}

func (l *logging) logger() *slog.Logger { return slog.New(slog.NewMultiHandler(l.handlers...)) }

func (l *logging) close() {
	for _, c := range l.closers {
		_ = c.Close() // at exit: nowhere left to report it
	}
}
