package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	"github.com/verbatimhq/verbatim/daemon/config"
)

// Limits of a request's parts besides the file.
const (
	maxFieldBytes = 64 << 10 // a form field's value
	maxFields     = 64       // form fields in one request
	maxJSONBody   = 1 << 20  // a JSON request's body
)

// partialPrefix names an upload still being received; a crash leaves these behind, and
// CleanUploads removes them.
const partialPrefix = ".partial-"

// form is a multipart request read: its file streamed to disk, its other fields in memory.
type form struct {
	file   string // the upload's path in the upload folder; "" when the request had none
	name   string // the file's name as the client gave it, made safe
	size   int64
	sha256 string
	fields map[string][]string
}

// remove deletes the upload, when the request is refused.
func (f *form) remove() {
	if f != nil && f.file != "" {
		os.Remove(f.file)
		f.file = ""
	}
}

// readForm reads a multipart request: the part named fileField is streamed to a new file in
// the upload folder (hashed as it goes), at most MaxUpload bytes; the other parts are fields.
// Uploads beyond MaxUploads at once get 429; a refused request leaves no file behind.
func (s *Server) readForm(w http.ResponseWriter, r *http.Request, fileField string) (*form, *Error) {
	select {
	case s.uploads <- struct{}{}:
		defer func() { <-s.uploads }()
	default:
		return nil, Errorf(http.StatusTooManyRequests, "too_many_uploads",
			"%d uploads are being received already: try again in a moment", cap(s.uploads))
	}
	if r.ContentLength > s.c.MaxUpload+maxFields*maxFieldBytes {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "file_too_large",
			"the request is %d bytes; uploads are limited to %d bytes (max_upload)", r.ContentLength, s.c.MaxUpload)
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.c.MaxUpload+maxFields*maxFieldBytes)
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		return nil, Errorf(http.StatusBadRequest, "invalid_content_type", "want a multipart/form-data body with the file in %q", fileField)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, "invalid_multipart", "the multipart body cannot be read: %v", err)
	}
	f := &form{fields: map[string][]string{}}
	ok := false
	defer func() {
		if !ok {
			f.remove()
		}
	}()
	for n := 0; ; n++ {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, bodyError(err, s.c.MaxUpload)
		}
		if n > maxFields {
			return nil, Errorf(http.StatusBadRequest, "too_many_fields", "more than %d form fields", maxFields)
		}
		name := p.FormName()
		if name == "" {
			p.Close()
			continue
		}
		if name == fileField {
			if f.file != "" {
				return nil, Errorf(http.StatusBadRequest, "duplicate_file", "more than one %q part", fileField)
			}
			if e := s.receive(f, p); e != nil {
				return nil, e
			}
			continue
		}
		v, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
		if err != nil {
			return nil, bodyError(err, s.c.MaxUpload)
		}
		if len(v) > maxFieldBytes {
			e := Errorf(http.StatusBadRequest, "field_too_large", "field %q is longer than %d bytes", name, maxFieldBytes)
			e.Param = name
			return nil, e
		}
		f.fields[name] = append(f.fields[name], string(v))
	}
	ok = true
	return f, nil
}

// receive streams the file part p to a new file in the upload folder.
func (s *Server) receive(f *form, p *multipart.Part) *Error {
	if err := os.MkdirAll(s.c.UploadDir, 0o700); err != nil {
		return Errorf(http.StatusInternalServerError, "upload_failed", "upload folder: %v", err)
	}
	out, err := os.CreateTemp(s.c.UploadDir, partialPrefix+"*")
	if err != nil {
		return Errorf(http.StatusInternalServerError, "upload_failed", "upload folder: %v", err)
	}
	f.file, f.name = out.Name(), safeName(p.FileName())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(p, s.c.MaxUpload+1))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return bodyError(err, s.c.MaxUpload)
	}
	if n > s.c.MaxUpload {
		return Errorf(http.StatusRequestEntityTooLarge, "file_too_large", "the file is larger than %d bytes (max_upload)", s.c.MaxUpload)
	}
	if n == 0 {
		return Errorf(http.StatusBadRequest, "empty_file", "the file is empty")
	}
	f.size, f.sha256 = n, hex.EncodeToString(h.Sum(nil))
	return nil
}

// bodyError is an error reading the request's body as the client's problem.
func bodyError(err error, limit int64) *Error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return Errorf(http.StatusRequestEntityTooLarge, "file_too_large", "the request is larger than the %d bytes uploads are limited to (max_upload)", limit)
	}
	return Errorf(http.StatusBadRequest, "invalid_body", "the request's body cannot be read: %v", err)
}

// safeName is a client's file name reduced to a plain name: no folders, no control characters,
// not hidden, at most 200 bytes; "upload" when nothing is left.
func safeName(name string) string {
	name = strings.ReplaceAll(name, `\`, "/")
	name = filepath.Base(filepath.Clean("/" + name))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '/' || r == unicode.ReplacementChar {
			return -1
		}
		return r
	}, name)
	name = strings.TrimLeft(strings.TrimSpace(name), ".~$")
	for len(name) > 200 {
		ext := filepath.Ext(name)
		if len(ext) > 20 {
			ext = ""
		}
		name = strings.ToValidUTF8(name[:200-len(ext)], "") + ext
	}
	if name == "" || name == "/" {
		return "upload"
	}
	return name
}

// folderFields maps the form fields named like config.Folder's keys (json tags) to a Folder,
// and returns the fields it did not know. A list is given comma-separated or repeated.
func folderFields(fields map[string][]string) (config.Folder, map[string][]string, *Error) {
	var f config.Folder
	rest := map[string][]string{}
	v := reflect.ValueOf(&f).Elem()
	byTag := map[string]int{}
	for i := range v.NumField() {
		tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		byTag[tag] = i
	}
	for name, vals := range fields {
		i, ok := byTag[name]
		if !ok || name == "enabled" || name == "ignore" {
			rest[name] = vals
			continue
		}
		fv := v.Field(i)
		bad := func(why string) *Error {
			e := Errorf(http.StatusBadRequest, "invalid_field", "field %q: %s", name, why)
			e.Param = name
			return e
		}
		if fv.Kind() == reflect.Slice {
			var list []string
			for _, s := range vals {
				for _, item := range strings.Split(s, ",") {
					if item = strings.TrimSpace(item); item != "" {
						list = append(list, item)
					}
				}
			}
			fv.Set(reflect.ValueOf(list))
			continue
		}
		if len(vals) != 1 {
			return f, nil, bad("given more than once")
		}
		s := strings.TrimSpace(vals[0])
		p := reflect.New(fv.Type().Elem())
		switch p.Elem().Kind() {
		case reflect.String:
			p.Elem().SetString(vals[0])
		case reflect.Bool:
			b, err := strconv.ParseBool(s)
			if err != nil {
				return f, nil, bad(fmt.Sprintf("%q is not true or false", s))
			}
			p.Elem().SetBool(b)
		case reflect.Int:
			n, err := strconv.Atoi(s)
			if err != nil {
				return f, nil, bad(fmt.Sprintf("%q is not a whole number", s))
			}
			p.Elem().SetInt(int64(n))
		case reflect.Float64:
			x, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return f, nil, bad(fmt.Sprintf("%q is not a number", s))
			}
			p.Elem().SetFloat(x)
		default:
			return f, nil, bad("cannot be given as a form field")
		}
		fv.Set(p)
	}
	return f, rest, nil
}
